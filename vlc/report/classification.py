"""The classification part of the report: a classifier's predictions scored against an ``Id,Category`` labels CSV."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlc.data.datasets.tinyimagenet30 import read_class_file, read_labels
from vlc.errors import UserError, warn
from vlc.prediction_files import submission_ids
from vlc.report.predictions import Prediction, Predictions
from vlc.text_files import inside

MOST_CONFUSED = 10
"""How many (true, predicted) pairs the most-confused table lists."""


@dataclass
class ClassScores:
    """One row of the per-class table; ``None`` where a ratio has no denominator (no image of, or predicted as, it)."""

    name: str
    precision: float | None
    recall: float | None
    f1: float | None
    support: int
    predicted: int


@dataclass
class Scored:
    """A classifier's predictions with their true classes, and everything the report shows of them.

    Attributes:
        class_names: the classes, in index order (``--classes``, else those the prediction file names).
        truth: per prediction, its true class index (``None`` for an image the labels do not list: never here).
        accuracy: top-1 accuracy.
        top_k: the fraction whose true class is among the ``k`` best the file lists, and ``k``.
        classes: the per-class precision, recall, F1 and support.
        confusion: counts ``(C, C)``, true class by row, predicted class by column.
        order: the class order that groups confused classes (:func:`vlc.metrics.figures.confusion_order`).
        confused: the most frequent ``(true, predicted, count)`` mistakes.
        mistakes: the wrong predictions, most confident first.
        unpredicted: ``Id`` of the labels without a prediction (images left out of the prediction run).
    """

    class_names: list[str]
    truth: list[int]
    accuracy: float
    top_k: tuple[float, int]
    classes: list[ClassScores]
    confusion: np.ndarray
    order: list[int]
    confused: list[tuple[str, str, int]]
    mistakes: list[tuple[Prediction, str]]
    unpredicted: list[str] = field(default_factory=list)


def class_names(predictions: Predictions, classes_file: str | None) -> tuple[list[str], bool]:
    """The classes in index order, and whether they are the whole list (from ``classes_file``, a ``class.txt``).

    Without ``classes_file`` they are read off the predictions (``class_index`` and ``label``); an index no
    prediction names stays ``#<index>``.

    Raises:
        UserError: the predictions name a class, or a class index, that ``classes_file`` does not hold as such.
    """
    pairs = {item.row["class_index"]: item.row["label"] for item in predictions.items}
    if classes_file is not None:
        names = read_class_file(Path(classes_file))
        wrong = {i: name for i, name in pairs.items() if i >= len(names) or names[i] != name}
        if wrong:
            i, name = next(iter(wrong.items()))
            listed = names[i] if i < len(names) else "nothing"
            raise UserError(
                f"{predictions.path}: predicts class {i} as {name!r}, but {classes_file} lists {listed} there "
                "(the predictions come from a model of other classes)"
            )
        return names, True
    names = [pairs.get(i, f"#{i}") for i in range(max(pairs) + 1)]
    unnamed = [str(i) for i in range(len(names)) if i not in pairs]
    if unnamed:
        warn(
            f"{predictions.path}: no prediction names class {', '.join(unnamed)}: shown as #<index> ("
            "--classes class.txt names every class)"
        )
    return names, False


def score(predictions: Predictions, labels: str, classes_file: str | None = None) -> Scored:
    """Score ``predictions`` against the labels CSV ``labels`` (``Id,Category``; ``Id`` as ``--writer.submission``).

    Raises:
        UserError: the labels file is wrong (unreadable, an unknown class) or lacks a row for a predicted image.
    """
    names, complete = class_names(predictions, classes_file)
    try:
        rows = read_labels(labels, names, "predicted image")
    except UserError as err:
        hint = "" if complete else "; the classes are those the predictions name: --classes class.txt gives them all"
        raise UserError(f"--labels {err}{hint}") from None
    by_id = {inside(name) or name: label for name, label, _ in rows}
    ids = submission_ids([item.file for item in predictions.items])
    missing = [i for i in ids if i not in by_id]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise UserError(
            f"--labels {labels}: no row for {len(missing)} of the {len(ids)} predicted images ({shown}); expected "
            "a line 'Id,Category' for each, Id the file's path under the predicted folder (as --writer.submission)"
        )
    unpredicted = sorted(set(by_id) - set(ids))
    if unpredicted:
        warn(f"{labels}: {len(unpredicted)} labelled images have no prediction in {predictions.path} (left out)")
    return _scored(predictions, names, [by_id[i] for i in ids], unpredicted)


def _scored(predictions: Predictions, names: list[str], truth: list[int], unpredicted: list[str]) -> Scored:
    from vlc.metrics.figures import confusion_order

    items = predictions.items
    predicted = [item.row["class_index"] for item in items]
    confusion = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    k = min(len(item.row["top_k"]) for item in items)
    in_top = [names[t] in [name for name, _ in item.row["top_k"][:k]] for item, t in zip(items, truth)]
    wrong = [(item, names[t]) for item, t, p in zip(items, truth, predicted) if t != p]
    wrong.sort(key=lambda pair: -pair[0].row["probability"])
    return Scored(
        class_names=names,
        truth=truth,
        accuracy=float(np.trace(confusion) / len(items)),
        top_k=(sum(in_top) / len(items), k),
        classes=class_scores(confusion, names),
        confusion=confusion,
        order=confusion_order(confusion),
        confused=most_confused(confusion, names),
        mistakes=wrong,
        unpredicted=unpredicted,
    )


def class_scores(confusion: np.ndarray, names: list[str]) -> list[ClassScores]:
    """Precision, recall, F1 and support of each class from the confusion counts (true by row)."""
    hits, support, predicted = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    rows = []
    for i, name in enumerate(names):
        precision = hits[i] / predicted[i] if predicted[i] else None
        recall = hits[i] / support[i] if support[i] else None
        f1 = None
        if precision is not None and recall is not None:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores = (_float(precision), _float(recall), _float(f1))
        rows.append(ClassScores(name, *scores, int(support[i]), int(predicted[i])))
    return rows


def most_confused(confusion: np.ndarray, names: list[str], n: int = MOST_CONFUSED) -> list[tuple[str, str, int]]:
    """The ``n`` most frequent mistakes ``(true, predicted, count)``, most frequent first (ties by class order)."""
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    pairs = [(int(off[t, p]), t, p) for t, p in zip(*np.nonzero(off))]
    pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
    return [(names[t], names[p], count) for count, t, p in pairs[:n]]


def macro(classes: list[ClassScores]) -> dict[str, float | None]:
    """The mean precision, recall and F1 over the classes with images or predictions, a missing ratio counting 0.

    As torchmetrics' macro averages (the dashboard's ``val/f1_macro``) count them.
    """
    counted = [row for row in classes if row.support or row.predicted]
    return {
        key: sum(getattr(row, key) or 0.0 for row in counted) / len(counted) if counted else None
        for key in ("precision", "recall", "f1")
    }


def _float(value) -> float | None:
    return None if value is None else float(value)
