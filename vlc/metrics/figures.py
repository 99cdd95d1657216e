"""Non-scalar results (confusion matrix, ROC curves) drawn with matplotlib, for the loggers (``vlc.loggers``).

Both are drawn for TensorBoard's image cards, which scale a figure down to their size (TensorBoard 2.21, measured
in a 1400-pixel browser window: about 330 pixels wide in the Images tab, 200 pixels high in Time Series): at most
800 pixels, few and large labels, and

- the confusion matrix with its classes in :func:`confusion_order` (classes confused with one another side by side),
  each cell's count written in it when there are :data:`MAX_ANNOTATED` classes or fewer;
- the ROC curves of the :data:`ROC_EACH` worst and best classes by AUROC in distinct colours, the other classes as
  thin grey lines, and the macro-average curve (the mean true positive rate over classes at each false positive rate).

On the card the ROC legend, the colours and the matrix's blocks read at a glance; the counts of 30 classes need the
figure at its own size (the Images tab's "Show actual image size", or a wider card).
"""

import matplotlib

matplotlib.use("Agg")  # no display on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassROC  # noqa: E402

MAX_ANNOTATED = 30
"""Up to this many classes, every confusion-matrix cell shows its count."""
ROC_EACH = 3
"""The ROC figure names this many worst and this many best classes."""
DPI = 100


def confusion_order(counts) -> list[int]:
    """A class order that puts classes confused with one another next to each other (the matrix's blocks).

    Single-linkage agglomerative clustering of the confusion: the similarity of two classes is the fraction of
    either's images taken for the other, summed both ways; the two most similar groups are joined, end to end the
    way that puts their most confused classes side by side, until no confusion links two groups. Groups are then
    given by their first class's index, and classes confused with nothing keep their index order.

    Args:
        counts: ``(C, C)`` confusion counts, true class by row.
    """
    counts = np.asarray(counts, dtype=np.float64)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    similar = rates + rates.T
    np.fill_diagonal(similar, 0)
    groups = [[i] for i in range(len(counts))]
    link = similar.copy()  # between groups: the largest similarity of their members
    while len(groups) > 1:
        a, b = np.unravel_index(np.argmax(link), link.shape)
        if link[a, b] <= 0:
            break
        a, b = min(a, b), max(a, b)
        groups[a] = _join(groups[a], groups[b], similar)
        link[a] = link[:, a] = np.maximum(link[a], link[b])
        link[a, a] = 0
        link = np.delete(np.delete(link, b, axis=0), b, axis=1)
        del groups[b]
    return [i for group in sorted(groups, key=min) for i in group]


def _join(first: list[int], second: list[int], similar: np.ndarray) -> list[int]:
    """``first`` and ``second`` end to end, each forwards or backwards, with the most similar ends meeting."""
    options = [first + second, first + second[::-1], first[::-1] + second, first[::-1] + second[::-1]]
    return max(options, key=lambda order: similar[order[len(first) - 1], order[len(first)]])


def confusion_matrix_figure(metric: MulticlassConfusionMatrix, class_names: list[str]):
    """The confusion matrix in :func:`confusion_order`: colour the fraction of the row, counts in the cells."""
    counts = metric.compute().cpu().numpy()
    order = confusion_order(counts)
    counts = counts[np.ix_(order, order)]
    names = [class_names[i] for i in order]
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(names)
    size = 6.0 if n <= 10 else 8.0 if n <= MAX_ANNOTATED else 10.0  # inches at 100 dpi: 600-1000 pixels
    fig, ax = plt.subplots(figsize=(size, size), dpi=DPI)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    label_size = 12 if n <= 10 else 9 if n <= MAX_ANNOTATED else 6
    ax.set_xticks(range(n), names, rotation=90, fontsize=label_size)
    ax.set_yticks(range(n), names, fontsize=label_size)
    if n <= MAX_ANNOTATED:
        cell_size = 14 if n <= 10 else 8
        for (t, p), count in np.ndenumerate(counts):
            if count:
                colour = "white" if rates[t, p] > 0.5 else "black"
                ax.text(p, t, str(int(count)), ha="center", va="center", fontsize=cell_size, color=colour)
    ax.set_xlabel("predicted", fontsize=12)
    ax.set_ylabel("true", fontsize=12)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    title = f"confusion matrix: accuracy {accuracy:.3f}, {int(counts.sum())} images"
    ax.set_title(title + ("\n(counts; colour: fraction of the row)" if n <= MAX_ANNOTATED else ""), fontsize=12)
    fig.tight_layout()
    return fig


def roc_curves(metric: MulticlassROC) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Per class ``(fpr, tpr, auroc)`` from a computed ROC metric (binned or exact thresholds)."""
    fpr, tpr, _ = metric.compute()
    curves = []
    for x, y in zip(fpr, tpr):
        curves.append((x.float().cpu().numpy(), y.float().cpu().numpy(), torch.trapezoid(y, x).abs().item()))
    return curves


def macro_roc(curves: list[tuple[np.ndarray, np.ndarray, float]], points: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """The macro-average ROC curve: at each false positive rate of a common grid, the mean true positive rate."""
    grid = np.linspace(0, 1, points)
    rates = []
    for fpr, tpr, _ in curves:
        order = np.argsort(fpr, kind="stable")
        rates.append(np.interp(grid, fpr[order], tpr[order]))
    return grid, np.mean(rates, axis=0)


def roc_figure(metric: MulticlassROC, class_names: list[str], each: int = ROC_EACH):
    """One-vs-rest ROC curves: the ``each`` worst and best classes named, the others grey, and the macro curve."""
    curves = roc_curves(metric)
    ranked = sorted(range(len(curves)), key=lambda i: curves[i][2])  # worst first
    named = ranked if len(ranked) <= 2 * each else ranked[:each] + ranked[-each:]
    fig, ax = plt.subplots(figsize=(7, 6), dpi=DPI)
    for i in ranked:
        if i not in named:
            ax.plot(curves[i][0], curves[i][1], color="0.8", linewidth=0.8, zorder=1)
    colours = plt.get_cmap("tab10").colors
    for colour, i in zip(colours, named):
        fpr, tpr, auc = curves[i]
        ax.plot(fpr, tpr, color=colour, linewidth=2, label=f"{class_names[i]} {auc:.3f}", zorder=2)
    grid, mean_tpr = macro_roc(curves)
    macro_auc = sum(auc for _, _, auc in curves) / len(curves)
    ax.plot(grid, mean_tpr, color="black", linewidth=2.5, label=f"macro {macro_auc:.3f}", zorder=3)
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.6)
    ax.set_xlabel("false positive rate", fontsize=12)
    ax.set_ylabel("true positive rate", fontsize=12)
    shown = f"worst and best {each} of {len(curves)} classes (grey: others)"
    shown = "every class" if len(named) == len(curves) else shown
    ax.set_title(f"ROC one-vs-rest: {shown}", fontsize=12)
    ax.legend(title="class, AUROC", fontsize=11, title_fontsize=11, loc="lower right")
    fig.tight_layout()
    return fig
