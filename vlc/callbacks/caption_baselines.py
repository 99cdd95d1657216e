"""Baselines beside every captioning evaluation, so that each score has its floor."""

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from vlc.data.bad_images import Unreadable
from vlc.metrics.baselines import constant_caption, nearest_neighbour_captions


class CaptionBaselines(L.Callback):
    """On ``vlc validate`` and ``vlc test``, scores two baselines on the same images with the captioner's metrics.

    - ``constant``: one training caption for every image, the one that scores best on the training set
      (:func:`vlc.metrics.baselines.constant_caption`): what the language prior alone achieves.
    - ``nearest``: each image gets a caption of its nearest training images by the encoder's average-pooled
      features, consensus re-ranked as by Devlin et al. (2015)
      (:func:`vlc.metrics.baselines.nearest_neighbour_captions`).

    Both are scored exactly as the model's captions (same split, tokenizer and metrics) and logged beside them as
    ``val/constant_bleu_4``, ``val/nearest_cider_d`` ... (``test/...`` for ``vlc test``). The training split is
    loaded and encoded once per run for this. Captioners with ``baselines: false`` skip it.
    """

    def __init__(self) -> None:
        self.features: list[torch.Tensor] = []
        self.references: list[list[str]] = []

    @staticmethod
    def _active(trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
        evaluating = trainer.state.fn in ("validate", "test")
        return evaluating and bool(pl_module.hparams.get("baselines"))

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.features, self.references = [], []

    def _batch(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict | None) -> None:
        if batch is not None and self._active(trainer, pl_module):
            self.features.append(pooled_features(pl_module, batch["images"]))
            self.references += batch["references"]

    def _end(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._active(trainer, pl_module) or not self.references:
            return
        train_features, train_references = training_side(trainer, pl_module)
        constant = constant_caption(train_references)
        nearest = nearest_neighbour_captions(torch.cat(self.features), train_features, train_references)
        rank_zero_info(f"baselines: the constant caption is {constant!r}")
        ended = torch.ones(len(self.references), dtype=torch.bool, device=pl_module.device)
        for name, captions in (("constant", [constant] * len(self.references)), ("nearest", nearest)):
            metrics = pl_module.caption_metrics(f"{stage}/{name}_").to(pl_module.device)
            metrics.update(captions, self.references, ended=ended)
            pl_module.log_dict(metrics.compute())
        self.features, self.references = [], []

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer, pl_module)

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer, pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch(trainer, pl_module, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch(trainer, pl_module, batch)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._end(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._end(trainer, pl_module, "test")


@torch.no_grad()
def pooled_features(pl_module: L.LightningModule, images: torch.Tensor) -> torch.Tensor:
    """The encoder's grid averaged over space ``(B, C)``, on the CPU."""
    return pl_module.encoder(images.to(pl_module.device)).float().mean(dim=(2, 3)).cpu()  # (B, C, h, w) -> (B, C)


def training_side(trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[torch.Tensor, list[list[str]]]:
    """Pooled features ``(N, C)`` and references of the training images (the split is loaded if need be)."""
    datamodule = trainer.datamodule
    if "train" not in datamodule.datasets:
        datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    features, references, batch = [], [], []
    for i in range(len(dataset.keys)):  # per image, also when the dataset lists (image, caption) pairs
        item = dataset.image(i)
        if not isinstance(item, Unreadable):
            batch.append(item)
            references.append(dataset.references[i])
        if batch and (len(batch) == datamodule.batch_size or i == len(dataset.keys) - 1):
            features.append(pooled_features(pl_module, torch.stack(batch)))
            batch = []
    return torch.cat(features), references
