"""What every vlc task shares: how it starts from pre-trained files, builds its optimizer and loads old checkpoints.

One rule for every file that initialises a model (the backbone's torchvision ``weights``, the task's ``init_from``
classification checkpoint, the captioner's GloVe vectors): it is read only when fitting starts from scratch, never
when a run resumes, is evaluated or predicts, because the checkpoint holds the weights. ``vlc fit`` reads them right
after building the model, so a missing file or an offline download stops before any data is loaded. The same rule
holds for layers computed from the training data (airbench's whitening stem, ``ImageBackbone.init_from_data``):
they are computed when fitting starts from scratch without ``init_from`` (whose layers keep the statistics they were
trained with), once the data module is set up, and checkpoints carry them.
"""

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from vlc.checkpoint_upgrade import upgrade
from vlc.checkpoints import TASK_KEY, fill_metric_states
from vlc.errors import UserError
from vlc.explain.ood import CHECKPOINT_KEY, FeatureStatistics
from vlc.models.backbone import ImageBackbone
from vlc.tasks.hparams import log_parameter_counts
from vlc.tasks.optim import configure, param_groups


class Task(L.LightningModule):
    """A LightningModule with an :class:`ImageBackbone` named by ``BACKBONE`` and an optional ``init_from``."""

    KIND: str
    """``classification`` or ``captioning``: written in ``run.yaml`` and checkpoints, read back by ``vlc compare``."""

    PREDICT_CONFIG: str
    """The example config of ``vlc predict`` for this task's checkpoints."""

    BACKBONE = "backbone"
    """The attribute that holds the task's image backbone."""

    MONITOR: tuple[str, str, str]
    """The metric, mode and file name of the best checkpoints a fit keeps unless its config names a Checkpoint."""

    @classmethod
    def monitor_for(cls, init_args) -> tuple[str, str, str]:
        """The ``MONITOR`` of a model built with ``init_args`` (the config's Namespace or a dict: has ``get``)."""
        return cls.MONITOR

    DATA_SAMPLE = 5000
    """How many training images :meth:`init_from_data` passes to the backbone (airbench's whitening uses 5,000)."""

    pretrained_loaded = False

    def __init__(self) -> None:
        super().__init__()
        self.validation_features = FeatureStatistics()  # this validation epoch's images (collect_features)

    input_statistics: dict | None = None
    """The pooled features of the latest validation epoch's images, summarised (``vlc.explain.ood``); checkpoints
    carry it, so that predictions can say when images look unlike them (None: not measured, or an old checkpoint)."""

    @property
    def image_backbone(self) -> ImageBackbone:
        """The task's image backbone (the classifier's ``backbone``, the captioner's ``encoder``)."""
        return getattr(self, self.BACKBONE)

    def load_pretrained(self) -> None:
        """Read the pre-trained files once, printing what each loaded (see the module docstring)."""
        if self.pretrained_loaded:
            return
        self.pretrained_loaded = True
        for report in self.pretrained_reports():
            if report and rank_zero_only.rank == 0:  # the trainer's global rank (0 before one is attached)
                print(report)

    def pretrained_reports(self) -> list[str | None]:
        """Load the backbone's weights, then ``init_from``; what each loaded (None: nothing to load)."""
        reports = [self.image_backbone.load_pretrained()]
        if self.hparams.get("init_from"):
            key = "model.init_from"
            reports.append(self.image_backbone.load_classifier_checkpoint(self.hparams.init_from, key).summary())
        return reports

    def init_from_data(self) -> None:
        """Compute the backbone's layers that are statistics of the training data, printing what was done.

        The sample is ``DATA_SAMPLE`` training images of the data module (``ImageDataModule.sample_images``);
        nothing is read when the backbone has no such layer.
        """
        backbone = self.image_backbone
        if backbone.whitening is None:
            return
        sample = getattr(self.trainer.datamodule, "sample_images", None)
        if sample is None:
            raise UserError("the backbone's whitening stem is fitted to the training images of a vlc data module")
        report = backbone.init_from_data(sample(self.DATA_SAMPLE))
        if self.trainer.is_global_zero:
            print(report)

    def cannot_explain(self) -> str | None:
        """Why this model's predictions have no explanation (``vlc predict --writer.explain``), or None."""
        return None

    def frozen_note(self) -> str:
        """What is frozen, for the parameter counts printed when fitting starts."""
        return ""

    def on_fit_start(self) -> None:
        if self.trainer.ckpt_path is None:  # a resumed run restores its own weights
            self.load_pretrained()
            if not self.hparams.get("init_from"):  # transferred layers keep the statistics they were trained with
                self.init_from_data()
        log_parameter_counts(self, self.frozen_note())

    def on_before_optimizer_step(self, optimizer) -> None:
        for param in self.image_backbone.resting_parameters(self.current_epoch):  # after DDP's gradient reduction
            param.grad = None  # the optimizer skips a parameter without a gradient

    def configure_optimizers(self):
        """``self.optimizer`` over the trainable parameters, grouped by ``param_groups``.

        The backbone's apart with ``pretrained_lr_scale``, the batch norms' biases apart with ``norm_bias_lr_scale``.
        """
        hparams = self.hparams
        params = param_groups(
            self, hparams.get("pretrained_lr_scale", 1.0), self.BACKBONE, hparams.get("norm_bias_lr_scale", 1.0)
        )
        return configure(self, params, self.optimizer, self.scheduler, self.hparams.scheduler_interval)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        cls = type(self)
        checkpoint[TASK_KEY] = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "kind": self.KIND}
        if self.input_statistics is not None:
            checkpoint[CHECKPOINT_KEY] = self.input_statistics

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        upgrade(checkpoint)  # a checkpoint of an earlier vlc version
        fill_metric_states(self, checkpoint)  # or one written before the training averages were saved
        self.input_statistics = checkpoint.get(CHECKPOINT_KEY)

    # -- what validation images look like (vlc.explain.ood) ---------------------------------------------------
    def collect_features(self, pooled) -> None:
        """Keep the pooled features ``(B, C)`` of a validation batch (not those of the sanity check)."""
        if not self.trainer.sanity_checking:
            self.validation_features.update(pooled)

    def summarise_features(self) -> None:
        """At a validation epoch's end: the summary of its images' features replaces the previous one."""
        if not self.trainer.sanity_checking:
            self.input_statistics = self.validation_features.summary() or self.input_statistics
        self.validation_features.reset()
