"""The start-up quick check (``QUICKCHECK=1``): a small accuracy table printed before serving.

It measures only what the models never saw: RAVDESS test actors 19-24 (speaker-independent split)
and the FER-2013 test split, ``QUICKCHECK_PER_CLASS`` items per label drawn with a fixed seed, plus
synthetic fused pairs of the two with the live ``W_VOICE``. Scoring is ``eval.evaluate``'s, through
the server's own engine. A missing or malformed dataset folder costs its row and one warning line;
the check never stops the server from starting.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from tqdm import tqdm

from eval.datasets import (
    RAVDESS_TEST_ACTORS,
    DatasetError,
    Item,
    image_folder_items,
    ravdess_items,
    stratified_sample,
)
from eval.evaluate import SYNTHETIC_NOTE, Scores, format_table, fuse_pairs, score_faces, score_speech
from realtime.config import Settings
from realtime.engine import EmotionEngine

log = logging.getLogger(__name__)
SEED = 0


@dataclass(frozen=True)
class QuickCheckReport:
    """The rows that could be measured, the warnings for those that could not, and the total time."""

    rows: tuple[Scores, ...]
    warnings: tuple[str, ...]
    per_class: int
    seconds: float

    def table(self) -> str:
        """The one table printed at start-up, with its title and the note on synthetic pairs."""
        title = (
            f"Quick check: {self.per_class} per class, seed {SEED}, {self.seconds:.1f} s "
            "(test actors and test images only: data the models never trained on)"
        )
        lines = [title, format_table(self.rows) if self.rows else "(no rows: see the warnings above)"]
        if any(row.key == "fused" for row in self.rows):
            lines.append(SYNTHETIC_NOTE)
        return "\n".join(lines)


def _sample(load: Callable[[], list[Item]], per_class: int, warnings: list[str]) -> list[Item]:
    """A stratified sample of a dataset, or [] with a warning when the dataset is missing or malformed."""
    try:
        return stratified_sample(load(), per_class, SEED)
    except DatasetError as exc:
        warnings.append(f"quick check: {exc}")
        return []


def run_quickcheck(engine: EmotionEngine, settings: Settings, progress: bool = True) -> QuickCheckReport:
    """Measure the loaded models on ``settings.quickcheck_per_class`` test items per label."""
    start = time.perf_counter()
    warnings = [f"quick check: no {kind} model is loaded, its row is skipped"
                for kind, model in (("voice", engine.voice), ("face", engine.face)) if model is None]
    per_class = settings.quickcheck_per_class
    clips: list[Item] = []
    images: list[Item] = []
    if engine.voice is not None:
        clips = _sample(lambda: ravdess_items(settings.ravdess_dir, RAVDESS_TEST_ACTORS), per_class, warnings)
    if engine.face is not None:
        images = _sample(lambda: image_folder_items(settings.fer2013_dir / "test"), per_class, warnings)
    for warning in warnings:
        log.warning(warning)
    with tqdm(total=len(clips) + len(images), desc="quick check", unit="item", file=sys.stderr,
              disable=not progress, leave=False) as bar:
        speech = score_speech(engine, clips, "RAVDESS actors 19-24 (clip avg)", bar) if clips else None
        faces = score_faces(engine, images, "FER-2013 test (crops)", detect=False, bar=bar) if images else None
    rows = [scores for scores in (speech, faces) if scores is not None]
    if speech is not None and faces is not None:
        rows.append(fuse_pairs(speech, faces, settings.w_voice, SEED))
    return QuickCheckReport(tuple(rows), tuple(warnings), per_class, time.perf_counter() - start)


def print_quickcheck(engine: EmotionEngine, settings: Settings) -> None:
    """Run the quick check and print its table; any failure is logged and never raised."""
    try:
        report = run_quickcheck(engine, settings)
    except Exception as exc:  # the check must never stop the server from starting
        log.warning("quick check failed, serving anyway: %s: %s", type(exc).__name__, exc)
        log.debug("quick check failure", exc_info=True)
        return
    print(report.table(), flush=True)
