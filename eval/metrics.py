"""Classification metrics from labels and probability vectors, in plain numpy.

Shared by the voice and face training scripts and the evaluation CLI. ``y_true`` holds class
indices (n,), ``probs`` holds one score vector per sample (n, classes); scores need not be
normalised, only their order matters. Ties are broken towards the lower class index, as
``np.argmax`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _check(y_true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != y_true.size:
        raise ValueError(f"expected probs of shape ({y_true.size}, classes), got {probs.shape}")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= probs.shape[1]):
        raise ValueError(f"labels must lie in 0..{probs.shape[1] - 1}")
    return y_true, probs


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int = 1) -> float:
    """Share of samples whose true class is among the ``k`` highest scores (0.0 when empty)."""
    y_true, probs = _check(y_true, probs)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if y_true.size == 0:
        return 0.0
    ranking = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(ranking == y_true[:, None], axis=1)))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(classes, classes) int64 counts; rows are true classes, columns predicted classes."""
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in length")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def per_class_prf(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 per class from a confusion matrix; 0 where undefined."""
    matrix = np.asarray(matrix, dtype=np.float64)
    true_pos = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    recall = np.divide(true_pos, actual, out=np.zeros_like(true_pos), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(true_pos), where=denominator > 0
    )
    return precision, recall, f1


def macro_f1(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 over the classes present in ``y_true`` or predicted."""
    y_true, probs = _check(y_true, probs)
    matrix = confusion_matrix(y_true, probs.argmax(axis=1), probs.shape[1])
    _, _, f1 = per_class_prf(matrix)
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    return float(f1[present].mean()) if present.any() else 0.0


def summarize(
    y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str], k: int = 5
) -> dict[str, Any]:
    """One evaluation's figures, JSON-ready: n, top-1, top-k, macro-F1, per class, confusion."""
    y_true, probs = _check(y_true, probs)
    if probs.shape[1] != len(labels):
        raise ValueError(f"{len(labels)} labels for {probs.shape[1]} classes")
    matrix = confusion_matrix(y_true, probs.argmax(axis=1), len(labels))
    precision, recall, f1 = per_class_prf(matrix)
    support = matrix.sum(axis=1)
    return {
        "n": int(y_true.size),
        "top1": top_k_accuracy(y_true, probs, 1),
        f"top{k}": top_k_accuracy(y_true, probs, k),
        "macro_f1": macro_f1(y_true, probs),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion": matrix.tolist(),
    }


def format_confusion(matrix: np.ndarray | list[list[int]], labels: Sequence[str]) -> str:
    """A confusion matrix as a fixed-width text table (rows true, columns predicted)."""
    matrix = np.asarray(matrix, dtype=np.int64)
    width = max(max(len(label) for label in labels), len(str(matrix.max(initial=0)))) + 1
    header = " " * width + "".join(f"{label[:width - 1]:>{width}}" for label in labels)
    rows = [
        f"{label:<{width}}" + "".join(f"{count:>{width}}" for count in row)
        for label, row in zip(labels, matrix)
    ]
    return "\n".join([header, *rows])
