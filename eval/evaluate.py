"""Offline evaluation through the live server's engine: speech, faces, and fused synthetic pairs.

The models, their preprocessing and the fusion are the server's own (``EmotionEngine``,
``realtime.fusion.fuse``); this module only feeds them labelled files and scores the answers.
Settings (face model, weight paths, ``W_VOICE``, silence gate) come from the environment and
``.env``, as for the server.

Examples::

    # RAVDESS test actors, the FER-2013 test split, and fused pairs of the two
    python -m eval.evaluate --ravdess ../shared/data/ravdess --actors 19-24 \\
        --faces ../shared/data/fer2013/test --out reports/test

    # any audio with a CSV manifest path,label; whole photos with face detection; 20 per class
    python -m eval.evaluate --manifest clips.csv --label-map calm=neutral,fearful=fear \\
        --faces photos/ --detect --per-class 20 --out reports/mine

Fused pairs are synthetic: a clip and an image of the same label, from two unrelated people. They
show how the fusion combines two imperfect models; they are not a multimodal benchmark.

The report folder holds ``metrics.json``, ``report.md``, ``confusion_<set>.png`` and
``predictions_<set>.csv`` (one row per scored item, so that every figure can be recomputed).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from eval.datasets import (
    DatasetError,
    Item,
    image_folder_items,
    manifest_items,
    parse_actors,
    parse_label_map,
    ravdess_items,
    read_image,
    stratified_sample,
)
from eval.metrics import format_confusion, summarize
from realtime.audio import load_audio_file
from realtime.config import PROJECT_ROOT, Settings
from realtime.engine import EmotionEngine
from realtime.face import FaceClassifier
from realtime.fusion import fuse
from realtime.hsemotion import find_hsemotion_weights
from realtime.labels import LABEL_INDEX, LABELS
from realtime.voice import VoiceClassifier, speech_windows
from realtime.weights import file_sha256

FACE_BATCH = 64  # crops per classifier call
TOP_K = 5
SYNTHETIC_NOTE = (
    "Fused pairs are synthetic: a speech clip and a face image of the same label, from unrelated "
    "people. Not a multimodal benchmark."
)


Row = tuple[str, str, np.ndarray]  # source, true label, probabilities


class MissingModelError(RuntimeError):
    """A set cannot be scored because the engine did not load the model it needs."""


@dataclass(frozen=True)
class Skipped:
    """An item that could not be scored, and why (e.g. ``no face found``)."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Scores:
    """One model's probabilities for the items it scored, with their true labels.

    ``key`` names the set in file names (``speech``, ``faces``, ``fused``, ``speech_windows``);
    ``dataset`` describes it for people.
    """

    key: str
    dataset: str
    sources: tuple[str, ...]
    labels: tuple[str, ...]
    probs: np.ndarray  # (n, len(LABELS))
    seconds: float
    skipped: tuple[Skipped, ...] = ()

    @property
    def y_true(self) -> np.ndarray:
        return np.array([LABEL_INDEX[label] for label in self.labels], dtype=np.int64)

    def summary(self) -> dict[str, Any]:
        """N, top-1, top-5, macro-F1, per-class P/R/F1 and the confusion matrix (``eval.metrics``)."""
        return summarize(self.y_true, self.probs, LABELS, k=TOP_K)


def _scores(key: str, dataset: str, rows: Sequence[Row], start: float,
            skipped: Sequence[Skipped] = ()) -> Scores:
    """Scores from (source, label, probs) rows, timed from ``start`` (``time.perf_counter``)."""
    probs = np.array([p for _, _, p in rows], dtype=np.float32).reshape(-1, len(LABELS))
    return Scores(key, dataset, tuple(s for s, _, _ in rows), tuple(label for _, label, _ in rows),
                  probs, time.perf_counter() - start, tuple(skipped))


# --- scoring through the engine ------------------------------------------------------------------

def score_speech(engine: EmotionEngine, items: Sequence[Item], dataset: str, bar: tqdm) -> Scores:
    """Per-clip probabilities: the server's windowed average over each clip (1 s windows, 0.5 s hop)."""
    voice = _voice(engine)
    start = time.perf_counter()
    rows: list[Row] = []
    skipped: list[Skipped] = []
    for item in items:
        bar.update()
        try:
            samples = load_audio_file(item.path)
        except ValueError:
            skipped.append(Skipped(item.path, "unreadable audio"))
            continue
        rows.append((str(item.path), item.label, voice.predict_clip(samples, engine.settings.silence_db)))
    return _scores("speech", dataset, rows, start, skipped)


def score_speech_windows(engine: EmotionEngine, items: Sequence[Item], dataset: str, bar: tqdm) -> Scores:
    """Per-window probabilities: each 1 s window the server would score, with its clip's label."""
    voice = _voice(engine)
    start = time.perf_counter()
    rows: list[Row] = []
    for item in items:
        bar.update()
        try:
            windows = speech_windows(load_audio_file(item.path), engine.settings.silence_db)
        except ValueError:
            continue  # counted as unreadable by score_speech
        probs = voice.predict_windows(windows)
        rows += [(f"{item.path}#{i}", item.label, p) for i, p in enumerate(probs)]
    return _scores("speech_windows", dataset, rows, start)


def score_faces(engine: EmotionEngine, items: Sequence[Item], dataset: str, detect: bool, bar: tqdm) -> Scores:
    """Probabilities per image: of the whole image as a face crop, or of its largest detected face."""
    face = _face(engine)
    start = time.perf_counter()
    rows: list[Row] = []
    skipped: list[Skipped] = []
    for batch_start in range(0, len(items), FACE_BATCH):
        batch = items[batch_start : batch_start + FACE_BATCH]
        bar.update(len(batch))
        images = [(item, read_image(item.path)) for item in batch]
        skipped += [Skipped(item.path, "unreadable image") for item, image in images if image is None]
        readable = [(item, image) for item, image in images if image is not None]
        if detect:
            found = [(item, engine.face_probs(image)) for item, image in readable]
            skipped += [Skipped(item.path, "no face found") for item, probs in found if probs is None]
            rows += [(str(item.path), item.label, probs) for item, probs in found if probs is not None]
        elif readable:
            probs = face.predict_batch([image for _, image in readable])
            rows += [(str(item.path), item.label, p) for (item, _), p in zip(readable, probs)]
    return _scores("faces", dataset, rows, start, skipped)


def fuse_pairs(speech: Scores, faces: Scores, w_voice: float, seed: int = 0) -> Scores:
    """Synthetic pairs: per label, clips and images shuffled with ``seed`` and paired one to one.

    Reuses the probabilities already computed for each modality and fuses them with the server's
    ``fuse``. A label has ``min(clips, images)`` pairs.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    voice_rows: list[int] = []
    face_rows: list[int] = []
    for label in LABELS:
        clips = rng.permutation([i for i, lab in enumerate(speech.labels) if lab == label])
        images = rng.permutation([i for i, lab in enumerate(faces.labels) if lab == label])
        count = min(len(clips), len(images))
        voice_rows += clips[:count].tolist()
        face_rows += images[:count].tolist()
    fused = fuse(speech.probs[voice_rows], faces.probs[face_rows], w_voice)
    rows = [
        (f"{speech.sources[v]} + {faces.sources[f]}", speech.labels[v], p)
        for v, f, p in zip(voice_rows, face_rows, np.asarray(fused))
    ]
    return _scores("fused", f"fused pairs, synthetic (w_voice={w_voice:g})", rows, start)


def _voice(engine: EmotionEngine) -> VoiceClassifier:
    if engine.voice is None:
        raise MissingModelError(f"no voice model is loaded: {'; '.join(engine.notes)}")
    return engine.voice


def _face(engine: EmotionEngine) -> FaceClassifier:
    if engine.face is None:
        raise MissingModelError(f"no face model is loaded: {'; '.join(engine.notes)}")
    return engine.face


# --- reporting ------------------------------------------------------------------------------------


def format_table(rows: Sequence[Scores]) -> str:
    """One fixed-width table: dataset, N, top-1, top-5, macro-F1, seconds."""
    width = max([len("dataset"), *(len(s.dataset) for s in rows)])
    lines = [f"{'dataset':<{width}}  {'N':>5}  {'top-1':>6}  {'top-5':>6}  {'macro-F1':>8}  {'seconds':>7}"]
    for scores in rows:
        s = scores.summary()
        lines.append(
            f"{scores.dataset:<{width}}  {s['n']:>5}  {s['top1']:>6.3f}  {s[f'top{TOP_K}']:>6.3f}  "
            f"{s['macro_f1']:>8.3f}  {scores.seconds:>7.1f}"
        )
    return "\n".join(lines)


def model_card(engine: EmotionEngine) -> dict[str, Any]:
    """The loaded models' names, and the path and sha256 of each weight file they came from."""
    settings = engine.settings
    models = engine.models
    files: dict[str, Path | None] = {}
    if models.voice is not None:
        files["voice"] = settings.voice_weights
    if models.face is not None and models.face.startswith("local"):
        files["face"] = settings.face_local_weights.with_suffix(".onnx")  # what LocalFaceClassifier runs
    elif models.face is not None and models.face.startswith("hsemotion"):
        files["face"] = find_hsemotion_weights(settings)
    weights = {kind: {"path": str(path), "sha256": file_sha256(path)} for kind, path in files.items() if path}
    return {"voice": models.voice, "face": models.face, "face_detector": models.face_detector, "weights": weights}


def plot_confusion(scores: Scores, path: Path) -> None:
    """Confusion-matrix PNG: rows true, columns predicted; colour is the row share, text the count."""
    matrix = np.asarray(scores.summary()["confusion"], dtype=np.int64)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(6.4, 5.6), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of the true class")
    axes.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
    axes.set_yticks(range(len(LABELS)), LABELS)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{scores.dataset}\nN={len(scores.labels)}", fontsize=10)
    for (row, col), count in np.ndenumerate(matrix):
        axes.text(col, row, str(count), ha="center", va="center",
                  color="white" if share[row, col] > 0.5 else "black", fontsize=8)
    figure.savefig(path, dpi=110)


def write_predictions(scores: Scores, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["source", "label", "predicted", *(f"p_{label}" for label in LABELS)])
        for source, label, probs in zip(scores.sources, scores.labels, scores.probs):
            writer.writerow([source, label, LABELS[int(np.argmax(probs))], *(f"{p:.6f}" for p in probs)])


def result_record(scores: Scores) -> dict[str, Any]:
    skipped = Counter(s.reason for s in scores.skipped)
    return {
        "dataset": scores.dataset,
        "seconds": round(scores.seconds, 3),
        "skipped": dict(skipped),
        "skipped_files": [str(s.path) for s in scores.skipped],
        **scores.summary(),
    }


def write_report(out: Path, results: Sequence[Scores], header: dict[str, Any]) -> dict[str, Any]:
    """Write metrics.json, report.md, a confusion PNG and a predictions CSV per set; return the metrics."""
    out.mkdir(parents=True, exist_ok=True)
    metrics = {**header, "results": {scores.key: result_record(scores) for scores in results}}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    for scores in results:
        write_predictions(scores, out / f"predictions_{scores.key}.csv")
        if scores.key != "speech_windows":
            plot_confusion(scores, out / f"confusion_{scores.key}.png")
    (out / "report.md").write_text(render_markdown(results, metrics), encoding="utf-8")
    return metrics


def render_markdown(results: Sequence[Scores], metrics: dict[str, Any]) -> str:
    models = metrics["models"]
    lines = [
        "# Evaluation report",
        "",
        f"Command: `{metrics['command']}`  ",
        f"Created: {metrics['created_utc']}  ",
        f"Models: voice `{models['voice']}`, face `{models['face']}`, detector `{models['face_detector']}`",
        "",
        *(f"- {kind} weights `{w['path']}` sha256 `{w['sha256']}`" for kind, w in models["weights"].items()),
        "",
        "```",
        format_table(results),
        "```",
        "",
    ]
    if any(s.key == "fused" for s in results):
        lines += [SYNTHETIC_NOTE, ""]
    for scores in results:
        record = metrics["results"][scores.key]
        lines += [f"## {scores.dataset}", ""]
        if record["skipped"]:
            counts = ", ".join(f"{n} {reason}" for reason, n in record["skipped"].items())
            lines += [f"Not scored: {counts} (listed in metrics.json, `skipped_files`).", ""]
        if scores.key != "speech_windows":
            lines += [f"![confusion](confusion_{scores.key}.png)", ""]
        lines += ["```", format_confusion(record["confusion"], LABELS), "```", ""]
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The validated, sampled inputs of one run; an empty list means that set is not evaluated."""

    speech: list[Item]
    speech_name: str
    faces: list[Item]
    faces_name: str
    detect: bool
    seed: int


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, Plan]:
    """The arguments and the validated plan; a bad argument or dataset exits with its message."""
    parser = argparse.ArgumentParser(
        prog="python -m eval.evaluate",
        description="Evaluate the server's voice and face models, and their fusion on synthetic pairs.",
    )
    speech = parser.add_mutually_exclusive_group()
    speech.add_argument("--ravdess", type=Path, metavar="DIR", help="RAVDESS folder (Actor_NN/*.wav|flac)")
    speech.add_argument("--manifest", type=Path, metavar="CSV", help="CSV with header path,label of audio files")
    parser.add_argument("--actors", default="19-24", help="RAVDESS actors (default 19-24, the test actors)")
    parser.add_argument("--faces", type=Path, metavar="DIR", help="image folder <label>/*.png|jpg")
    parser.add_argument("--detect", action="store_true", help="whole photos: classify the largest face found")
    parser.add_argument("--label-map", default="", metavar="MAP",
                        help="names to labels, e.g. calm=neutral,fearful=fear (manifest labels, image folder names)")
    parser.add_argument("--per-class", type=int, metavar="N", help="sample at most N items per label (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-class sampling and of the pairing")
    parser.add_argument("--out", type=Path, help="report folder (default: reports/eval-<UTC time>)")
    args = parser.parse_args(argv)
    if args.ravdess is None and args.manifest is None and args.faces is None:
        parser.error("nothing to evaluate: give --ravdess DIR or --manifest CSV, and/or --faces DIR")
    if args.per_class is not None and args.per_class < 1:
        parser.error("--per-class must be at least 1")
    try:
        return args, make_plan(args)
    except DatasetError as exc:
        parser.error(str(exc))


def make_plan(args: argparse.Namespace) -> Plan:
    """Validate the dataset arguments and sample each set (raises DatasetError)."""
    label_map = parse_label_map(args.label_map)
    speech: list[Item] = []
    speech_name = ""
    if args.ravdess is not None:
        speech = ravdess_items(args.ravdess, parse_actors(args.actors))
        speech_name = f"RAVDESS actors {args.actors} (clip avg)"
    elif args.manifest is not None:
        speech = manifest_items(args.manifest, label_map)
        speech_name = f"speech {args.manifest.name} (clip avg)"
    faces: list[Item] = []
    faces_name = ""
    if args.faces is not None:
        faces = image_folder_items(args.faces, label_map)
        folder = args.faces.resolve()
        faces_name = f"faces {folder.parent.name}/{folder.name} ({'detected' if args.detect else 'crops'})"
    return Plan(
        speech=stratified_sample(speech, args.per_class, args.seed),
        speech_name=speech_name,
        faces=stratified_sample(faces, args.per_class, args.seed),
        faces_name=faces_name,
        detect=args.detect,
        seed=args.seed,
    )


def evaluate(engine: EmotionEngine, plan: Plan) -> list[Scores]:
    """Score every planned set through the engine under one progress bar; fuse when both exist."""
    results: list[Scores] = []
    speech = faces = None
    with tqdm(total=2 * len(plan.speech) + len(plan.faces), unit="item", file=sys.stderr) as bar:
        if plan.speech:
            bar.set_description("speech")
            speech = score_speech(engine, plan.speech, plan.speech_name, bar)
            bar.set_description("speech windows")
            windows_name = plan.speech_name.replace("(clip avg)", "(1 s windows)")
            results += [speech, score_speech_windows(engine, plan.speech, windows_name, bar)]
        if plan.faces:
            bar.set_description("faces")
            faces = score_faces(engine, plan.faces, plan.faces_name, plan.detect, bar)
            results.append(faces)
    if speech is not None and faces is not None:
        results.append(fuse_pairs(speech, faces, engine.settings.w_voice, plan.seed))
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the CLI; returns the metrics written to ``metrics.json``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, plan = parse_args(argv)
    started = datetime.now(timezone.utc)
    out = args.out or PROJECT_ROOT / "reports" / f"eval-{started:%Y%m%d-%H%M%S}"
    engine = EmotionEngine.from_settings(Settings())
    try:
        results = evaluate(engine, plan)
        header = {
            "command": shlex.join(["python", "-m", "eval.evaluate", *argv]),
            "created_utc": started.isoformat(timespec="seconds"),
            "models": model_card(engine),
            "w_voice": engine.settings.w_voice,
            "silence_db": engine.settings.silence_db,
            "per_class": args.per_class,
            "seed": args.seed,
        }
        metrics = write_report(out, results, header)
    except MissingModelError as exc:
        raise SystemExit(f"error: {exc}") from None
    finally:
        engine.close()
    print(format_table(results))
    print(f"report: {out}")
    return metrics


if __name__ == "__main__":
    main()
