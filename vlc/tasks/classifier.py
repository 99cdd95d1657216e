"""The LightningModule that trains, evaluates and applies any image classification network."""

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from jsonargparse.typing import PositiveInt
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassROC,
)

from vlc.data.augment import evaluation_views
from vlc.errors import UserError
from vlc.explain.gradcam import grad_cam, upsample
from vlc.explain.ood import ood_scores
from vlc.explain.render import classification_overlay
from vlc.loggers import log_figure
from vlc.metrics.figures import confusion_matrix_figure, roc_figure
from vlc.models.backbone import ImageBackbone
from vlc.models.cnn import ResidualCNN
from vlc.tasks.base import Task
from vlc.tasks.hparams import plain
from vlc.tasks.optim import default_optimizer, zero_loss


def scalar_metrics(num_classes: int, roc_thresholds: int) -> MetricCollection:
    """Top-1, top-5, macro F1 and macro AUROC: the scalars logged for validation and test."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "acc_top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
            "f1_macro": MulticlassF1Score(num_classes, average="macro"),
            "auroc_macro": MulticlassAUROC(num_classes, average="macro", thresholds=roc_thresholds),
        }
    )


class ImageClassifier(Task):
    """Trains backbone -> global average pooling -> dropout -> linear head with cross-entropy.

    Logs curves, metrics, a confusion matrix and ROC curves. Batches hold uint8 images; the backbone resizes and
    normalises them itself, so a checkpoint carries its preprocessing and prediction cannot apply another one.

    Args:
        backbone: the image backbone, called with no argument; in YAML the ``class_path`` of a backbone family
            (``vlc.models.ResidualCNN``, ``AirbenchNet`` or ``TorchvisionBackbone``) with its ``init_args``;
            ``null``: a ``ResidualCNN`` with its defaults (a default class would hand its options, e.g. its
            ``widths``, to the class a config names: jsonargparse keeps the options two classes share).
        num_classes: linked from the data module (or read from the checkpoint when predicting).
        class_names: linked from the data module; used in figures and prediction files.
        dropout: dropout before the linear head.
        optimizer: the optimizer, e.g. ``torch.optim.SGD`` with its ``init_args``.
        scheduler: an optional learning-rate scheduler; ``OneCycleLR`` gets ``total_steps`` from the trainer.
        scheduler_interval: step the scheduler every ``step`` or every ``epoch``.
        label_smoothing: label smoothing of the cross-entropy.
        flip_average: at evaluation and prediction, average the logits of each image and its mirror image.
        translate_average: at evaluation and prediction, also average over one-pixel shifts (airbench's test-time
            translation: half the weight on the image, a quarter on each of two diagonal shifts); with
            ``flip_average`` each shifted view is mirrored too (six views; ``vlc.data.augment.evaluation_views``).
        top_k: how many labels each prediction row lists.
        roc_thresholds: thresholds of the ROC and AUROC metrics (constant memory).
        init_from: a vlc classification checkpoint whose backbone initialises this one when fitting starts from
            scratch (the tensors whose shapes fit; the head stays new); a summary lists loaded, new and
            mismatched tensors. Never read again: a checkpoint holds the weights.
        freeze: backbone layers kept fixed: ``none``, ``all``, ``blocks:N`` (its first N layers) or a list of its
            layer names (see ``ImageBackbone.freeze``). Frozen batch norms stay in eval mode.
        pretrained_lr_scale: learning-rate multiplier for the trainable parameters of the backbone.
        norm_bias_lr_scale: learning-rate multiplier for the biases of the batch norms, whose weight decay is divided
            by it, so that their decay per step stays that of the other parameters (airbench's bias scaler: 64).
    """

    EVALUATION_ARGS = ("flip_average", "translate_average")
    """Arguments that change how images are evaluated, not the weights: given with ``--ckpt_path`` (``vlc validate``,
    ``test``, ``predict``, a resumed ``fit``), they replace the checkpoint's values, so that one checkpoint can be
    scored with and without test-time augmentation."""
    KIND = "classification"
    PREDICT_CONFIG = "configs/predict/classify.yaml"
    MONITOR = ("val/acc", "max", "best-epoch{epoch:02d}-acc{val/acc:.4f}")

    def __init__(
        self,
        backbone: Callable[[], ImageBackbone] | None = None,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        dropout: float = 0.0,
        optimizer: OptimizerCallable = default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["step", "epoch"] = "step",
        label_smoothing: float = 0.0,
        flip_average: bool = False,
        translate_average: bool = False,
        top_k: PositiveInt = 5,
        roc_thresholds: PositiveInt = 200,
        init_from: str | None = None,
        freeze: str | list[str | int] = "none",
        pretrained_lr_scale: float = 1.0,
        norm_bias_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if num_classes is None:
            raise UserError("model.num_classes is not set: it comes from the data module, or from --ckpt_path")
        class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise UserError(f"model.class_names has {len(class_names)} names for {num_classes} classes")
        self.save_hyperparameters()  # through the CLI, backbone/optimizer/scheduler are saved as their config
        self.hparams.update(plain(self.hparams))
        self.hparams.class_names = class_names
        self.backbone = (backbone or ResidualCNN)()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.num_features, num_classes)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.class_names = class_names
        # epoch averages of training whose state is saved in checkpoints: a resumed epoch averages all its batches
        self.train_loss, self.train_acc = MeanMetric(), MulticlassAccuracy(num_classes, average="micro")
        for metric in (self.train_loss, self.train_acc):
            metric.persistent(True)
        self.val_metrics = scalar_metrics(num_classes, roc_thresholds).clone(prefix="val/")
        self.test_metrics = scalar_metrics(num_classes, roc_thresholds).clone(prefix="test/")
        self.confusion = MulticlassConfusionMatrix(num_classes)
        self.roc = MulticlassROC(num_classes, thresholds=roc_thresholds)
        self.backbone.freeze(freeze)

    # -- model -----------------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, num_classes)`` for a uint8 (or 0-255 float) batch ``(B, 3, H, W)``.

        In evaluation, the weighted average of the logits of the test-time views (``flip_average``,
        ``translate_average``).
        """
        if self.training:
            return self.logits(images)
        return self.evaluate(images)[0]

    def evaluate(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation logits ``(B, K)`` and the pooled features ``(B, C)`` of the images.

        The logits are averaged over the test-time views, the features are those of the images themselves.
        """
        views = evaluation_views(images, self.hparams.flip_average, self.hparams.translate_average)
        pooled = [self.backbone(view).mean(dim=(2, 3)) for _, view in views]  # (B, C, h, w) -> (B, C) each
        logits = sum(weight * self.head(self.dropout(p)) for (weight, _), p in zip(views, pooled))
        return logits, pooled[0]

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits of one view: backbone, global average pooling, dropout, linear head."""
        return self.head(self.dropout(self.backbone(images).mean(dim=(2, 3))))  # (B, C, h, w) -> (B, C) -> (B, K)

    # -- training and evaluation -----------------------------------------------------------------------------
    def frozen_note(self) -> str:
        return f"freeze: {self.hparams.freeze}"

    def on_train_epoch_start(self) -> None:
        self.train_loss.reset(), self.train_acc.reset()  # not called when a run resumes in mid-epoch

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        if batch is None:  # no image of the batch could be read: a zero loss keeps every DDP process in step
            return zero_loss(self)
        images, labels = batch["images"], batch["labels"]
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        self.train_loss(loss.detach(), len(labels))
        self.train_acc(logits, labels)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def _evaluate(self, batch, metrics: MetricCollection, stage: str) -> None:
        if batch is None:  # no image of the batch could be read
            return
        images, labels = batch["images"], batch["labels"]
        logits, pooled = self.evaluate(images)
        logits = logits.float()
        if stage == "val":
            self.collect_features(pooled)
        self.log(f"{stage}/loss", F.cross_entropy(logits, labels), on_epoch=True, prog_bar=True)
        probs = logits.softmax(dim=-1)
        metrics.update(probs, labels)
        self.log_dict(metrics, on_epoch=True, prog_bar=stage != "test")
        if not self.trainer.sanity_checking:
            self.confusion.update(probs, labels)
            self.roc.update(probs, labels)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def _log_figures(self, stage: str) -> None:
        if self.trainer.sanity_checking:
            return
        if self.trainer.is_global_zero:
            step = self.current_epoch
            log_figure(
                self.trainer,
                f"{stage}/confusion_matrix",
                confusion_matrix_figure(self.confusion, self.class_names),
                step,
            )
            log_figure(self.trainer, f"{stage}/roc", roc_figure(self.roc, self.class_names), step)
        else:  # compute() synchronises across processes: every rank must take part
            self.confusion.compute(), self.roc.compute()
        self.confusion.reset()
        self.roc.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_figures("val")
        self.summarise_features()

    def on_test_epoch_end(self) -> None:
        self._log_figures("test")

    # -- prediction ----------------------------------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int) -> list[dict]:
        """One row per image: file, top-1 label and probability, and the top-k labels with probabilities.

        With the validation images' statistics (a checkpoint of this version) also ``ood_score``
        (``vlc.explain.ood``: above 1, the image's features lie farther from theirs than 99 in 100 of them).
        """
        if batch is None:  # no image of the batch could be read: they are listed beside the predictions
            return []
        images, files = batch["images"], batch["files"]
        logits, pooled = self.evaluate(images)
        probs = logits.float().softmax(dim=-1)
        scores = ood_scores(pooled, self.input_statistics) if self.input_statistics else None
        top_p, top_i = probs.topk(min(self.hparams.top_k, probs.shape[-1]), dim=-1)
        rows = []
        for n, (file, p, i) in enumerate(zip(files, top_p.tolist(), top_i.tolist())):
            top = [[self.class_names[c], round(q, 6)] for c, q in zip(i, p)]
            row = {"file": file, "label": top[0][0], "class_index": i[0], "probability": top[0][1], "top_k": top}
            rows.append(row if scores is None else {**row, "ood_score": scores[n]})
        return rows

    def explain(self, images: torch.Tensor, rows: list[dict]) -> list:
        """One overlay per row of :meth:`predict_step` (same order): the image and its Grad-CAM map (PIL images).

        The map is of the row's predicted class on the backbone's last feature grid
        (:attr:`~vlc.models.backbone.ImageBackbone.feature_layer`), for the image as given (no test-time views).
        """
        targets = torch.tensor([row["class_index"] for row in rows], device=images.device)
        maps = grad_cam(self, self.backbone.feature_layer, images, targets, forward=self.logits)  # (B, h, w)
        heats = upsample(maps, tuple(images.shape[-2:]))  # (B, H, W), 0-1
        return [
            classification_overlay(image, heat, row["label"], row["probability"])
            for image, heat, row in zip(images, heats, rows)
        ]

    # -- optimisation and checkpoints ----------------------------------------------------------------------


# checkpoints of older vlc versions hold no training averages
