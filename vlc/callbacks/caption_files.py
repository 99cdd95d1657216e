"""What a captioning run shows and keeps besides its checkpoints: sample captions on the dashboard, ``vocab.json``."""

from pathlib import Path

import lightning as L
import numpy as np

from vlc.explain.render import stack
from vlc.loggers import log_figure, log_image, log_text, takes_media
from vlc.metrics.caption_samples import caption_samples_figure, caption_samples_markdown
from vlc.runs import log_dir
from vlc.vocabulary import Vocabulary


class CaptionSamples(L.Callback):
    """Logs the samples a validation step returns (``images``, ``generated``, ``references``) as a figure and text.

    A callback of the captioner (``ImageCaptioner.configure_callbacks``), which returns them for the first
    validation batch (``model.scoring.num_samples`` images). With an attention decoder it also logs ``val/attention``:
    each sample's attention strip (one frame per generated word, ``ImageCaptioner.explain``), one below the other.
    """

    def __init__(self) -> None:
        self.samples: dict | None = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        if outputs is not None and not trainer.sanity_checking:  # the first batch's samples (ImageCaptioner)
            self.samples = outputs

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        samples, self.samples = self.samples, None
        if samples is None or not trainer.is_global_zero or trainer.logger is None:
            return
        step = trainer.current_epoch
        log_figure(trainer, "val/samples", caption_samples_figure(**samples), step)
        log_text(trainer, "val/captions", caption_samples_markdown(samples["generated"], samples["references"]), step)
        if takes_media(trainer) and pl_module.cannot_explain() is None:  # the strips cost a forward pass each
            images = samples["images"].to(pl_module.device)
            strips = pl_module.explain(images, [{"caption": caption} for caption in samples["generated"]])
            log_image(trainer, "val/attention", np.asarray(stack(strips)), step)


class VocabularyFile(L.Callback):
    """Writes a captioner's vocabulary as ``vocab.json`` into the run's log folder and beside its checkpoints.

    ``data.vocab_file`` reads it back, to evaluate or fine-tune the checkpoint on other data with its vocabulary.

    Args:
        vocab: the vocabulary to write (``None``: nothing is written).
    """

    def __init__(self, vocab: Vocabulary | None = None) -> None:
        self.vocab = vocab

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        vocab = self.vocab
        run = str(log_dir(trainer)) if vocab is not None and trainer.logger is not None else None  # every process
        if vocab is None or not trainer.is_global_zero:
            return
        folders = [cb.dirpath for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
        if run:  # without a logger: no run folder
            folders.append(run)
        for folder in dict.fromkeys(folders):
            vocab.save(Path(folder) / "vocab.json")
