"""The seven emotion labels, in the one order used everywhere, and the datasets' label maps."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
NUM_LABELS = len(LABELS)
LABEL_INDEX: dict[str, int] = {label: i for i, label in enumerate(LABELS)}

# RAVDESS file names: 03-01-EE-II-SS-RR-AA; EE is the emotion code. Calm counts as neutral.
RAVDESS_EMOTIONS: dict[str, str] = {
    "01": "neutral",
    "02": "neutral",  # calm
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}


def display(label: str) -> str:
    """A label as shown to a person: first letter capitalised."""
    return label[:1].upper() + label[1:]


def ravdess_label(file_stem: str) -> str:
    """The label of a RAVDESS clip from its file name (e.g. ``03-01-05-01-02-01-12``)."""
    parts = file_stem.split("-")
    if len(parts) != 7 or parts[2] not in RAVDESS_EMOTIONS:
        raise ValueError(f"not a RAVDESS file name (03-01-EE-II-SS-RR-AA): {file_stem!r}")
    return RAVDESS_EMOTIONS[parts[2]]


def ravdess_actor(file_stem: str) -> int:
    """The actor number (1-24) of a RAVDESS clip from its file name."""
    ravdess_label(file_stem)  # validates the name
    return int(file_stem.split("-")[6])
