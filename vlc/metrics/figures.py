"""Non-scalar results (confusion matrix, ROC curves) drawn with matplotlib and sent to the logger as figures."""

import matplotlib

matplotlib.use("Agg")  # no display on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassROC  # noqa: E402


def log_figure(logger, tag: str, fig, step: int) -> None:
    """Send ``fig`` to a logger that can show figures (TensorBoard's ``add_figure``), then free it."""
    experiment = getattr(logger, "experiment", None)
    if experiment is not None and hasattr(experiment, "add_figure"):
        experiment.add_figure(tag, fig, global_step=step, close=False)
    plt.close(fig)


def confusion_matrix_figure(metric: MulticlassConfusionMatrix, class_names: list[str]):
    """The row-normalised confusion matrix with class names on both axes."""
    matrix = metric.compute().float()
    matrix = matrix / matrix.sum(dim=1, keepdim=True).clamp(min=1)
    n = len(class_names)
    size = max(6.0, 0.32 * n)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix.cpu().numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix (row-normalised), accuracy {matrix.diag().mean():.3f} (class mean)")
    fig.tight_layout()
    return fig


def roc_figure(metric: MulticlassROC, class_names: list[str]):
    """One-vs-rest ROC curves, per-class AUROC in the legend and the macro AUROC in the title."""
    fpr, tpr, _ = metric.compute()
    fig, ax = plt.subplots(figsize=(8, 7))
    aucs = []
    for name, x, y in zip(class_names, fpr, tpr):
        auc = torch.trapezoid(y, x).abs().item()
        aucs.append(auc)
        ax.plot(x.cpu().numpy(), y.cpu().numpy(), linewidth=1, label=f"{name} ({auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.5)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC one-vs-rest, macro AUROC {sum(aucs) / len(aucs):.3f}")
    ax.legend(fontsize=6, ncol=2 if len(class_names) > 15 else 1, loc="lower right")
    fig.tight_layout()
    return fig
