"""The LightningModule that trains, evaluates and applies an image captioner: CNN encoder + LSTM decoder."""

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.text import Perplexity

from vlc.data.vocab import Vocabulary
from vlc.errors import UserError, warn
from vlc.metrics.bleu import CorpusBLEU
from vlc.metrics.caption_cosine import CaptionCosineSimilarity
from vlc.metrics.cider import CIDErD
from vlc.metrics.meteor import Meteor, meteor_available
from vlc.metrics.rouge import RougeL
from vlc.models.backbone import ImageBackbone
from vlc.models.caption_alignment import caption_loss, shift_captions
from vlc.models.decoding import beam_search
from vlc.models.feature_cache import FeatureCache
from vlc.models.glove import glove_embeddings
from vlc.models.lstm_decoder import LSTMDecoder
from vlc.tasks.base import Task
from vlc.tasks.hparams import log_final_hparams, plain
from vlc.tasks.optim import zero_loss


def adam(params: Any) -> torch.optim.Optimizer:
    """Adam at 1e-3: the optimizer of both captioning recipes, used when a config names none."""
    return torch.optim.Adam(params, lr=1e-3)


class ImageCaptioner(Task):
    """Encoder + decoder trained with teacher forcing; evaluated and applied by free-running decoding.

    The encoder (an ``ImageBackbone``, which owns its preprocessing) maps uint8 images to a feature grid; a decoder
    that is ``spatial`` (Show, Attend and Tell) gets the grid flattened into annotation vectors, the others (Show
    and Tell) get it average-pooled into one vector. The loss is the cross-entropy of the next word, ignoring
    padding, plus the decoder's weighted penalty (see ``vlc.models.caption_alignment``). Validation and test decode
    captions free-running (greedy or batched beam search, exactly as ``vlc predict``) and log corpus BLEU-1..4,
    CIDEr-D, ROUGE-L, caption cosine similarity and optionally METEOR; the first validation batch also returns
    sample images with their generated and reference captions, which ``vlc.callbacks.caption_files`` shows on the
    dashboard (that module also writes ``vocab.json``).

    Args:
        encoder: the image encoder, called with no argument; in YAML ``class_path: vlc.models.ImageBackbone``
            with its ``init_args`` (name, weights, image_size).
        decoder: the caption decoder, called as ``decoder(vocab_size, feature_dim, pad_idx)``; in YAML
            ``class_path: vlc.models.LSTMDecoder`` or ``vlc.models.AttentionLSTMDecoder`` with its ``init_args``.
        freeze_encoder: the encoder's layers kept fixed, weights and batch-norm statistics: ``true`` (all; its
            features are then computed once per image and cached, see ``feature_cache``), ``false`` (none: all
            fine-tuned), or as the classifier's ``freeze``: ``blocks:N`` (its first N layers; e.g. ``blocks:6``
            fine-tunes only ResNet50's ``layer3`` and ``layer4``) or a list of layer names.
        finetune_from_epoch: the first epoch that trains the encoder's unfrozen layers; before it the whole encoder
            is frozen and cached, so the randomly initialised decoder learns first (the references fine-tune a
            pre-trained encoder only after the decoder has been trained).
        pretrained_lr_scale: learning-rate multiplier of the encoder's parameters (e.g. 0.25: Adam at 4e-4 for the
            decoder and 1e-4 for the encoder, as in the reference implementations).
        feature_cache: with a frozen encoder: ``memory`` (default), ``disk`` (a float32 file under the run's
            log folder, removed at the end; for data whose features do not fit in memory) or ``off``.
        init_from: a vlc classification checkpoint whose backbone initialises the encoder when fitting starts from
            scratch (the same rule as the classifier's ``init_from``).
        glove_path: a GloVe text file (``glove.6B.300d.txt`` format) that initialises the word embeddings of the
            vocabulary's words when fitting starts from scratch (the decoder's ``embed_dim`` must be the file's
            dimension); the found/missing counts are printed and logged. Checkpoints hold the vectors.
        train_embeddings: fine-tune the word embeddings (``false`` keeps GloVe vectors fixed).
        vocab: the vocabulary as a dict; linked from the data module, stored in checkpoints.
        optimizer: the optimizer (default Adam, lr 1e-3).
        scheduler: an optional learning-rate scheduler; ``OneCycleLR`` gets ``total_steps`` from the trainer.
        scheduler_interval: step the scheduler every ``step`` or every ``epoch``.
        attention_grid: average-pool the encoder's grid to ``attention_grid x attention_grid`` cells before a
            spatial decoder attends over it (``null`` keeps the encoder's grid: 7x7 for ResNet50 at 224 px; Show,
            Attend and Tell attends over 14x14, which a ResNet50 gives at 448 px).
        decoding: ``greedy`` or ``beam`` (batched beam search) for validation, test and prediction.
        beam_width: beams per image for ``beam``.
        max_len: longest generated caption in tokens (``<end>`` included).
        length_penalty: beam scores are ``sum log p / length ** length_penalty`` (0: no normalisation).
        meteor: also compute METEOR (needs Java; starts a Java process per evaluation, a few seconds).
        num_samples: validation images shown with their captions on the dashboard each epoch.
    """

    BACKBONE = "encoder"
    MONITOR = ("val/bleu_4", "max", "best-epoch{epoch:02d}-bleu4{val/bleu_4:.4f}")

    def __init__(
        self,
        encoder: Callable[[], ImageBackbone] = ImageBackbone,
        decoder: Callable[[int, int, int], nn.Module] = LSTMDecoder,
        freeze_encoder: bool | str | list[str | int] = False,
        finetune_from_epoch: NonNegativeInt = 0,
        pretrained_lr_scale: PositiveFloat = 1.0,
        feature_cache: Literal["memory", "disk", "off"] = "memory",
        init_from: str | None = None,
        glove_path: str | None = None,
        train_embeddings: bool = True,
        attention_grid: PositiveInt | None = None,
        vocab: dict | None = None,
        optimizer: OptimizerCallable = adam,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["step", "epoch"] = "step",
        decoding: Literal["greedy", "beam"] = "greedy",
        beam_width: PositiveInt = 5,
        max_len: PositiveInt = 20,
        length_penalty: float = 1.0,
        meteor: bool = False,
        num_samples: NonNegativeInt = 8,
    ) -> None:
        super().__init__()
        if vocab is None:
            raise UserError("model.vocab is not set: it comes from the data module, or from --ckpt_path")
        try:
            self.vocab = Vocabulary.from_dict(vocab)
        except ValueError as err:
            raise UserError(f"model.vocab: {err}") from None
        if max_len < 1 or beam_width < 1:
            raise UserError("model.max_len and model.beam_width must be at least 1")
        self.save_hyperparameters()  # through the CLI, encoder/decoder/optimizer/scheduler are saved as their config
        self.hparams.update(plain(self.hparams))
        self.optimizer, self.scheduler = optimizer, scheduler
        self.encoder = encoder()
        self.decoder = decoder(len(self.vocab), self.encoder.num_features, Vocabulary.PAD)
        if glove_path:  # filled when fitting starts; a checkpoint holds the vectors (caption cosine scores with them)
            self.register_buffer("glove", torch.zeros_like(self.decoder.embedding.weight))
        self.decoder.embedding.weight.requires_grad_(train_embeddings)
        if not train_embeddings and not glove_path:
            warn("model.train_embeddings: false without model.glove_path keeps random word embeddings fixed")
        self.encoder_frozen_layers = {True: "all", False: "none"}.get(freeze_encoder, freeze_encoder)
        self.encoder.freeze(self.encoder_frozen_layers)  # what the optimizer will train, from its first step
        if meteor and not meteor_available():
            warn("model.meteor: METEOR needs Java on the PATH (not found); it is skipped")
        self.cache: FeatureCache | None = None
        # epoch averages of training whose state is saved in checkpoints: a resumed epoch averages all its batches
        self.train_loss, self.train_penalty = MeanMetric(), MeanMetric()
        for metric in (self.train_loss, self.train_penalty):
            metric.persistent(True)
        self.val_perplexity = Perplexity(ignore_index=Vocabulary.PAD)
        self.test_perplexity = Perplexity(ignore_index=Vocabulary.PAD)
        self.val_metrics = self._caption_metrics("val")
        self.test_metrics = self._caption_metrics("test")

    def _load_glove(self, path: str) -> str:
        """Fill the word embeddings (and the vectors caption cosine scores with) from a GloVe file; a report."""
        matrix, self.glove_report = glove_embeddings(path, self.vocab.words, self.glove.shape[1])
        with torch.no_grad():
            self.glove.copy_(matrix)
            self.decoder.embedding.weight.copy_(matrix)
        return self.glove_report

    def _caption_metrics(self, stage: str) -> MetricCollection:
        """BLEU-1..4, CIDEr-D, ROUGE-L, caption cosine and, when asked for and Java runs, METEOR.

        Caption cosine scores with the GloVe vectors, else with the live learnt embedding: the collections are
        built per stage, not cloned, so that the embedding stays shared.
        """
        embedding = self.glove if hasattr(self, "glove") else self.decoder.embedding.weight
        metrics = {
            "bleu": CorpusBLEU(4),
            "cider_d": CIDErD(),
            "rouge_l": RougeL(),
            "caption_cosine": CaptionCosineSimilarity(embedding, self.vocab),
        }
        if self.hparams.meteor and meteor_available():
            metrics["meteor"] = Meteor()
        return MetricCollection(metrics, prefix=f"{stage}/")

    # -- model -----------------------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Decoder input of a uint8 batch: annotation vectors ``(B, h*w, C)`` (spatial decoders) or ``(B, C)``."""
        trains = any(p.requires_grad for p in self.encoder.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and trains):
            grid = self.encoder(images).float()  # (B, C, h, w)
        if self.decoder.spatial:
            if self.hparams.attention_grid:
                grid = F.adaptive_avg_pool2d(grid, self.hparams.attention_grid)  # (B, C, g, g)
            return grid.flatten(2).transpose(1, 2).contiguous()  # (B, h*w, C)
        return grid.mean(dim=(2, 3))  # (B, C)

    def features(self, images: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`encode`, through the feature cache when the encoder is frozen and the images have keys."""
        if self.cache is None or keys is None:
            return self.encode(images)
        return self.cache.features(keys, images, self.encode)

    def forward(self, images: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        """Captions of a uint8 batch ``(B, 3, H, W)`` and their scores (length-normalised log-probabilities)."""
        return self.generate(self.encode(images))

    @torch.no_grad()
    def generate(self, features: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        """Free-running decoding of encoder features: greedy (= beam width 1) or batched beam search."""
        hp = self.hparams
        width = hp.beam_width if hp.decoding == "beam" else 1
        was_training = self.decoder.training
        self.decoder.eval()
        ids = {"start_idx": Vocabulary.START, "end_idx": Vocabulary.END, "pad_idx": Vocabulary.PAD}
        tokens, scores = beam_search(self.decoder, features, width, hp.max_len, hp.length_penalty, **ids)
        # tokens (B, L), scores (B,)
        self.decoder.train(was_training)
        return [self.vocab.decode(row) for row in tokens.cpu()], scores.float()

    # -- training and evaluation -----------------------------------------------------------------------------
    def on_train_start(self) -> None:
        self._schedule_encoder()  # the epoch is known now, also when a run resumes

    def on_train_epoch_start(self) -> None:
        self.train_loss.reset(), self.train_penalty.reset()  # not called when a run resumes in mid-epoch
        self._schedule_encoder()

    def encoder_waits(self) -> bool:
        """Whether the whole encoder is frozen this epoch (``freeze_encoder: true``, or before fine-tuning starts)."""
        return self.encoder_frozen_layers == "all" or self.current_epoch < self.hparams.finetune_from_epoch

    def _schedule_encoder(self) -> None:
        """Freeze the whole encoder until ``finetune_from_epoch``, then only ``freeze_encoder``'s layers.

        The parameters it releases are in the optimizer from its first step (see ``__init__``), so a resumed run
        restores their state; the feature cache serves only while the whole encoder is frozen.
        """
        waits = self.encoder_waits()
        self.encoder.freeze("all" if waits else self.encoder_frozen_layers)
        if not waits and self.cache is not None:
            rank_zero_info(f"epoch {self.current_epoch}: fine-tuning the encoder; its feature cache is dropped")
            self.close_cache()

    def training_step(self, batch: dict | None, batch_idx: int) -> torch.Tensor:
        if batch is None:  # no image of the batch could be read: a zero loss keeps every DDP process in step
            return zero_loss(self)
        features = self.features(batch["images"], batch["keys"])
        ce, penalty, _ = caption_loss(self.decoder, features, batch["captions"])
        loss = ce + self.decoder.penalty_weight * penalty
        B = len(batch["captions"])
        self.train_loss(loss.detach(), B)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=B)
        self.log("train/perplexity", ce.detach().exp(), on_step=True, on_epoch=False, batch_size=B)
        self.train_penalty(penalty.detach(), B)
        self.log("train/penalty", self.train_penalty, on_step=True, on_epoch=True, batch_size=B)
        return loss

    def _evaluate(self, batch: dict | None, batch_idx: int, stage: str) -> dict | None:
        if batch is None:  # no image of the batch could be read
            return
        features = self.features(batch["images"], batch["keys"])
        ce, _, logits = caption_loss(self.decoder, features, batch["captions"])
        B = len(batch["captions"])
        perplexity = self.val_perplexity if stage == "val" else self.test_perplexity
        perplexity.update(logits.float(), shift_captions(batch["captions"])[1])
        self.log(f"{stage}/loss", ce, on_epoch=True, prog_bar=True, batch_size=B, sync_dist=True)
        self.log(f"{stage}/perplexity", perplexity, on_epoch=True, batch_size=B)
        generated, _ = self.generate(features)
        if not self.trainer.sanity_checking:  # corpus scores of the two sanity-check batches would mean nothing
            (self.val_metrics if stage == "val" else self.test_metrics).update(generated, batch["references"])
        if stage == "val" and batch_idx == 0 and self.hparams.num_samples > 0:  # shown by callbacks.CaptionSamples
            n = self.hparams.num_samples
            return {
                "images": batch["images"][:n].cpu(),
                "generated": generated[:n],
                "references": batch["references"][:n],
            }
        return None

    def validation_step(self, batch: dict, batch_idx: int) -> dict | None:
        """Scores the batch; the first one also returns sample images with their captions (for the dashboard)."""
        return self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def _log_caption_metrics(self, stage: str) -> None:
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        if not self.trainer.sanity_checking:
            values = metrics.compute()  # every rank takes part: compute() gathers the captions
            self.log(f"{stage}/bleu_4", values.pop(f"{stage}/bleu_4"), prog_bar=stage == "val", sync_dist=True)
            self.log_dict(values, sync_dist=True)
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_caption_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_caption_metrics("test")

    # -- prediction ----------------------------------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int) -> list[dict]:
        """One row per image: file, caption and score (the length-normalised log-probability of the caption)."""
        if batch is None:  # no image of the batch could be read: they are listed beside the predictions
            return []
        files = batch["files"] if "files" in batch else [str(k) for k in batch["keys"].tolist()]  # a split: its keys
        captions, scores = self(batch["images"])
        return [
            {"file": file, "caption": caption, "score": round(score, 6)}
            for file, caption, score in zip(files, captions, scores.tolist())
        ]

    # -- pre-trained files, feature cache and optimisation -------------------------------------------------
    def pretrained_reports(self) -> list[str | None]:
        """The encoder's weights and ``init_from``, then the GloVe vectors (also shown on the dashboard)."""
        reports = super().pretrained_reports()
        if self.hparams.glove_path:
            reports.append(self._load_glove(self.hparams.glove_path))
        return reports

    def frozen_note(self) -> str:
        note = f"freeze_encoder: {self.encoder_frozen_layers}"
        if self.encoder_frozen_layers != "all" and self.hparams.finetune_from_epoch:
            note += f", the whole encoder until epoch {self.hparams.finetune_from_epoch}"
        return note

    def on_fit_start(self) -> None:
        super().on_fit_start()
        hp = self.hparams
        experiment = getattr(self.logger, "experiment", None)
        if self.trainer.ckpt_path is None and hp.glove_path and self.trainer.is_global_zero:
            if hasattr(experiment, "add_text"):
                experiment.add_text("glove", self.glove_report, 0)
        if self.encoder_waits() and hp.feature_cache != "off":
            path = None
            if hp.feature_cache == "disk":
                folder = Path(self.trainer.log_dir or self.trainer.default_root_dir)
                path = folder / f"feature_cache_rank{self.global_rank}.f32"
            self.cache = FeatureCache(path)

    def on_fit_end(self) -> None:
        """Report and drop the feature cache; write the hyper-parameters with the final scores (HPARAMS tab)."""
        log_final_hparams(self, {k: v for k, v in self.hparams.items() if k != "vocab"})
        self.close_cache()

    def close_cache(self) -> None:
        """Report and drop the feature cache, if any."""
        if self.cache is not None:
            cache = self.cache
            rank_zero_info(f"feature cache: {len(cache)} images, {cache.hits} hits, {cache.misses} misses")
            self.cache.close()
            self.cache = None
