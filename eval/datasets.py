"""Labelled evaluation items from the folders users already have on disk.

Three sources, each validated up front with an error that names the folder (or file) and what was
expected there:

- a RAVDESS folder, ``Actor_NN/03-01-EE-II-SS-RR-AA.wav|flac``, split by actors;
- a FER-2013-style image folder, ``<label>/*.png|jpg``;
- any audio files listed in a CSV manifest with the header ``path,label``.

Labels are always among ``realtime.labels.LABELS``; other names are mapped with a label map such as
``calm=neutral,fearful=fear``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.labels import LABEL_INDEX, LABELS, ravdess_actor, ravdess_label

AUDIO_SUFFIXES = (".wav", ".flac")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
RAVDESS_TEST_ACTORS = tuple(range(19, 25))
MANIFEST_HEADER = ("path", "label")


class DatasetError(ValueError):
    """A dataset folder or manifest that is missing or not laid out as expected."""


@dataclass(frozen=True)
class Item:
    """One labelled file: an audio clip or an image."""

    path: Path
    label: str

    @property
    def label_index(self) -> int:
        return LABEL_INDEX[self.label]


def parse_actors(spec: str) -> tuple[int, ...]:
    """RAVDESS actors from ``"19-24"``, ``"1,3,5-7"`` …, sorted; each between 1 and 24."""
    actors: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise DatasetError(f"actors {spec!r}: expected numbers and ranges like 19-24 or 1,3,5-7") from None
        if not 1 <= first <= last <= 24:
            raise DatasetError(f"actors {spec!r}: expected actors between 1 and 24, ranges low-high")
        actors.update(range(first, last + 1))
    return tuple(sorted(actors))


def parse_label_map(spec: str) -> dict[str, str]:
    """``"calm=neutral,fearful=fear"`` -> ``{"calm": "neutral", "fearful": "fear"}`` (lower case)."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        source, sep, target = (s.strip().lower() for s in part.partition("="))
        if not sep or not source or target not in LABEL_INDEX:
            raise DatasetError(
                f"label map entry {part!r}: expected name=label with label among {', '.join(LABELS)}"
            )
        mapping[source] = target
    return mapping


def map_label(name: str, label_map: Mapping[str, str]) -> str | None:
    """The label for a dataset's class name (case-insensitive), or None when it is unknown."""
    name = name.strip().lower()
    label = label_map.get(name, name)
    return label if label in LABEL_INDEX else None


def _require_dir(folder: Path, expected: str) -> None:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder; expected {expected}")


def ravdess_items(folder: Path, actors: Iterable[int] = RAVDESS_TEST_ACTORS) -> list[Item]:
    """The clips of the given actors in a RAVDESS folder, sorted by path; calm counts as neutral."""
    expected = "RAVDESS speech: Actor_01 … Actor_24/03-01-EE-II-SS-RR-AA.wav or .flac"
    folder = Path(folder)
    _require_dir(folder, expected)
    wanted = set(actors)
    clips = sorted(p for p in folder.glob("Actor_*/*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not clips:
        raise DatasetError(f"{folder}: no .wav or .flac clips in Actor_* folders; expected {expected}")
    items: list[Item] = []
    for clip in clips:
        try:
            actor, label = ravdess_actor(clip.stem), ravdess_label(clip.stem)
        except ValueError:
            raise DatasetError(f"{clip}: not a RAVDESS file name; expected {expected}") from None
        if actor in wanted:
            items.append(Item(clip, label))
    if not items:
        raise DatasetError(f"{folder}: no clips of actors {sorted(wanted)}; expected {expected}")
    return items


def image_folder_items(folder: Path, label_map: Mapping[str, str] | None = None) -> list[Item]:
    """Every image of a ``<label>/*.png|jpg`` folder, sorted by path."""
    expected = f"one sub-folder per label ({', '.join(LABELS)}) holding .png or .jpg images"
    folder = Path(folder)
    _require_dir(folder, expected)
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir())
    unknown = [p.name for p in subfolders if map_label(p.name, label_map or {}) is None]
    if not subfolders or unknown:
        hint = f" (for FER-2013 pass its test folder: {folder / 'test'})" if (folder / "test").is_dir() else ""
        found = f"sub-folders {unknown} are not labels" if unknown else "no sub-folders"
        raise DatasetError(f"{folder}: {found}; expected {expected}, or map names with --label-map{hint}")
    items = [
        Item(image, str(map_label(sub.name, label_map or {})))
        for sub in subfolders
        for image in sorted(sub.iterdir())
        if image.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise DatasetError(f"{folder}: no .png or .jpg images; expected {expected}")
    return items


def manifest_items(manifest: Path, label_map: Mapping[str, str] | None = None) -> list[Item]:
    """The files listed in a ``path,label`` CSV; relative paths are relative to the CSV's folder."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise DatasetError(f"{manifest}: manifest not found; expected a CSV file with header path,label")
    with manifest.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    if not rows or tuple(c.strip().lower() for c in rows[0]) != MANIFEST_HEADER:
        found = rows[0] if rows else "an empty file"
        raise DatasetError(f"{manifest}: expected the header line 'path,label', got {found}")
    items: list[Item] = []
    unknown: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise DatasetError(f"{manifest}, line {line}: expected 2 columns path,label, got {row}")
        path, name = Path(row[0].strip()), row[1]
        label = map_label(name, label_map or {})
        if label is None:
            unknown.setdefault(name.strip(), line)
            continue
        items.append(Item(path if path.is_absolute() else manifest.parent / path, label))
    if unknown:
        where = ", ".join(f"{name!r} (line {line})" for name, line in unknown.items())
        raise DatasetError(
            f"{manifest}: unknown labels {where}; labels must be among {', '.join(LABELS)}, "
            f"or be mapped with --label-map, e.g. --label-map calm=neutral,fearful=fear"
        )
    missing = [str(item.path) for item in items if not item.path.is_file()]
    if missing:
        raise DatasetError(f"{manifest}: {len(missing)} listed files not found, e.g. {missing[0]}")
    if not items:
        raise DatasetError(f"{manifest}: no rows; expected one line path,label per audio file")
    return items


def stratified_sample(items: list[Item], per_class: int | None, seed: int = 0) -> list[Item]:
    """At most ``per_class`` items of each label, drawn with ``seed``, in input order (all when None)."""
    if per_class is None:
        return list(items)
    rng = np.random.default_rng(seed)
    chosen: set[int] = set()
    for label in LABELS:
        indices = [i for i, item in enumerate(items) if item.label == label]
        if len(indices) > per_class:
            indices = rng.choice(indices, size=per_class, replace=False).tolist()
        chosen.update(indices)
    return [item for i, item in enumerate(items) if i in chosen]


def read_image(path: Path) -> np.ndarray | None:
    """An image file as BGR uint8 (gray images repeated over 3 channels), or None when unreadable."""
    return cv2.imread(str(path), cv2.IMREAD_COLOR)
