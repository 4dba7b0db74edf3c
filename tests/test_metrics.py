"""eval.metrics on small hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from eval.metrics import (
    confusion_matrix,
    format_confusion,
    macro_f1,
    per_class_prf,
    summarize,
    top_k_accuracy,
)

LABELS = ("a", "b", "c")
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
PROBS = np.array(
    [
        [0.7, 0.2, 0.1],  # 0 -> 0
        [0.2, 0.5, 0.3],  # 0 -> 1 (0 is 3rd)
        [0.1, 0.8, 0.1],  # 1 -> 1
        [0.5, 0.4, 0.1],  # 1 -> 0 (1 is 2nd)
        [0.1, 0.2, 0.7],  # 2 -> 2
        [0.3, 0.3, 0.4],  # 2 -> 2
    ]
)


def test_top_k_accuracy() -> None:
    assert top_k_accuracy(Y_TRUE, PROBS, 1) == pytest.approx(4 / 6)
    assert top_k_accuracy(Y_TRUE, PROBS, 2) == pytest.approx(5 / 6)
    assert top_k_accuracy(Y_TRUE, PROBS, 3) == 1.0
    assert top_k_accuracy(Y_TRUE, PROBS, 10) == 1.0  # k beyond the classes: everything counts
    assert top_k_accuracy(np.array([], dtype=int), np.zeros((0, 3)), 1) == 0.0


def test_ties_go_to_the_lower_index() -> None:
    assert top_k_accuracy([0], [[0.5, 0.5]], 1) == 1.0
    assert top_k_accuracy([1], [[0.5, 0.5]], 1) == 0.0


def test_confusion_matrix_rows_are_true_classes() -> None:
    matrix = confusion_matrix(Y_TRUE, PROBS.argmax(axis=1), 3)
    assert matrix.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 2]]
    assert matrix.dtype == np.int64


def test_per_class_prf_and_macro_f1() -> None:
    precision, recall, f1 = per_class_prf(confusion_matrix(Y_TRUE, PROBS.argmax(axis=1), 3))
    np.testing.assert_allclose(precision, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(f1, [0.5, 0.5, 1.0])
    assert macro_f1(Y_TRUE, PROBS) == pytest.approx(2 / 3)


def test_undefined_precision_is_zero_and_absent_classes_are_left_out() -> None:
    # class 2 is never true nor predicted: it does not count in the macro mean (as in sklearn)
    probs = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    precision, recall, f1 = per_class_prf(confusion_matrix([0, 1], probs.argmax(axis=1), 3))
    np.testing.assert_allclose(precision, [0.5, 0.0, 0.0])
    np.testing.assert_allclose(recall, [1.0, 0.0, 0.0])
    assert macro_f1([0, 1], probs) == pytest.approx((2 / 3 + 0.0) / 2)


def test_summarize_is_complete_and_json_ready() -> None:
    import json

    summary = summarize(Y_TRUE, PROBS, LABELS, k=2)
    assert summary["n"] == 6
    assert summary["top1"] == pytest.approx(4 / 6)
    assert summary["top2"] == pytest.approx(5 / 6)
    assert summary["macro_f1"] == pytest.approx(2 / 3)
    assert summary["per_class"]["c"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert summary["confusion"] == [[1, 1, 0], [1, 1, 0], [0, 0, 2]]
    json.dumps(summary)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        top_k_accuracy([0, 1], PROBS, 1)  # lengths differ
    with pytest.raises(ValueError):
        top_k_accuracy([3], [[0.2, 0.3, 0.5]], 1)  # label out of range
    with pytest.raises(ValueError):
        top_k_accuracy([0], [[1.0]], 0)
    with pytest.raises(ValueError):
        summarize(Y_TRUE, PROBS, ("a", "b"))
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 2)


def test_format_confusion() -> None:
    text = format_confusion([[1, 1, 0], [1, 1, 0], [0, 0, 12]], LABELS)
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["a", "b", "c"]
    assert lines[3].split() == ["c", "0", "0", "12"]
