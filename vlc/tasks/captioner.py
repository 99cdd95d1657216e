"""The LightningModule that trains, evaluates and applies an image captioner: CNN encoder + LSTM decoder."""

import copy
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.text import Perplexity

from vlc.checkpoints import fill_metric_states
from vlc.data.vocab import Vocabulary
from vlc.errors import UserError, warn
from vlc.metrics.bleu import CorpusBLEU
from vlc.metrics.caption_cosine import CaptionCosineSimilarity
from vlc.metrics.caption_samples import caption_samples_figure, caption_samples_markdown
from vlc.metrics.cider import CIDErD
from vlc.metrics.figures import log_figure
from vlc.metrics.meteor import Meteor, meteor_available
from vlc.metrics.rouge import RougeL
from vlc.models.attention_decoder import AttentionLSTMDecoder
from vlc.models.decoding import beam_search
from vlc.models.encoders import ImageEncoder
from vlc.models.feature_cache import FeatureCache
from vlc.models.glove import load_glove
from vlc.models.lstm_decoder import LSTMDecoder, shift_captions
from vlc.tasks.hparams import log_final_hparams, log_parameter_counts, plain
from vlc.tasks.optim import configure, zero_loss


def adam(params: Any) -> torch.optim.Optimizer:
    """Adam at 1e-3: the optimizer of both captioning recipes, used when a config names none."""
    return torch.optim.Adam(params, lr=1e-3)


class ImageCaptioner(L.LightningModule):
    """Encoder + decoder trained with teacher forcing; evaluated and applied by free-running decoding.

    The encoder maps uint8 images to a feature grid (it owns its preprocessing). The ``lstm`` decoder (Show and
    Tell) gets the grid average-pooled into one vector, projected to the embedding size as its first input; the
    ``attention`` decoder (Show, Attend and Tell) attends over the grid's positions. The loss is the
    cross-entropy of the next word, ignoring padding (plus the doubly stochastic attention penalty for
    ``attention``). Validation and test decode captions free-running (greedy or batched beam search, exactly as
    ``vlc predict``) and log corpus BLEU-1..4, CIDEr-D, ROUGE-L, caption cosine similarity and optionally
    METEOR; each validation epoch also logs a fixed set of sample images with their generated and reference
    captions.

    Args:
        encoder: the image encoder, called with no argument; in YAML ``class_path: vlc.models.ImageEncoder``
            with its ``init_args`` (backbone, weights, image_size, init_from).
        freeze_encoder: keep the encoder's weights (and batch-norm statistics) fixed; its features are then
            computed once per image and cached (see ``feature_cache``). Otherwise it is fine-tuned.
        feature_cache: with a frozen encoder: ``memory`` (default), ``disk`` (a float32 file under the run's
            log folder, removed at the end; for data whose features do not fit in memory) or ``off``.
        decoder: ``lstm`` or ``attention``.
        embed_dim: word-embedding size (replaced by the GloVe file's dimension when ``glove_path`` is set).
        hidden_dim: LSTM hidden size.
        num_layers: stacked LSTM layers (``lstm`` only).
        attention_dim: size of the attention MLP (``attention`` only).
        dropout: dropout before the output layer.
        attention_penalty: weight of the doubly stochastic attention penalty (``attention`` only).
        glove_path: a GloVe text file (``glove.6B.300d.txt`` format) that initialises the word embeddings of the
            vocabulary's words; the found/missing counts are printed and logged. Only read when training
            starts: checkpoints hold the embeddings (and store ``glove_path: null``).
        train_embeddings: fine-tune the word embeddings (``false`` keeps GloVe vectors fixed).
        vocab: the vocabulary as a dict; linked from the data module, stored in checkpoints.
        optimizer: the optimizer (default Adam, lr 1e-3).
        scheduler: an optional learning-rate scheduler; ``OneCycleLR`` gets ``total_steps`` from the trainer.
        scheduler_interval: step the scheduler every ``step`` or every ``epoch``.
        decoding: ``greedy`` or ``beam`` (batched beam search) for validation, test and prediction.
        beam_width: beams per image for ``beam``.
        max_len: longest generated caption in tokens (``<end>`` included).
        length_penalty: beam scores are ``sum log p / length ** length_penalty`` (0: no normalisation).
        meteor: also compute METEOR (needs Java; starts a Java process per evaluation, a few seconds).
        num_samples: validation images shown with their captions on the dashboard each epoch.
    """

    def __init__(
        self,
        encoder: Callable[[], nn.Module] = ImageEncoder,
        freeze_encoder: bool = False,
        feature_cache: Literal["memory", "disk", "off"] = "memory",
        decoder: Literal["lstm", "attention"] = "lstm",
        embed_dim: PositiveInt = 256,
        hidden_dim: PositiveInt = 512,
        num_layers: PositiveInt = 1,
        attention_dim: PositiveInt = 256,
        dropout: float = 0.0,
        attention_penalty: float = 1.0,
        glove_path: str | None = None,
        train_embeddings: bool = True,
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
        self.save_hyperparameters()  # through the CLI, encoder/optimizer/scheduler are saved as their config
        self.hparams.update(plain(self.hparams))
        self.optimizer, self.scheduler = optimizer, scheduler
        self.encoder = encoder()
        glove = self._glove(glove_path) if glove_path else None
        embed_dim = glove.shape[1] if glove is not None else embed_dim
        self.hparams.embed_dim = int(embed_dim)
        V, C = len(self.vocab), self.encoder.num_features
        if decoder == "lstm":
            self.decoder = LSTMDecoder(V, C, embed_dim, hidden_dim, num_layers, dropout, pad_idx=Vocabulary.PAD)
        else:
            self.decoder = AttentionLSTMDecoder(V, C, embed_dim, hidden_dim, attention_dim, dropout, Vocabulary.PAD)
        if glove is not None:
            self.decoder.embedding.weight.data.copy_(glove)
            self.register_buffer("glove", glove, persistent=False)
        self.decoder.embedding.weight.requires_grad_(train_embeddings)
        if not train_embeddings and glove is None:
            warn("model.train_embeddings: false without model.glove_path keeps random word embeddings fixed")
        if freeze_encoder:
            self.encoder.requires_grad_(False)
            self.encoder.eval()
        if meteor and not meteor_available():
            warn("model.meteor: METEOR needs Java on the PATH (not found); it is skipped")
        self.cache: FeatureCache | None = None
        # epoch averages of training whose state is saved in checkpoints: a resumed epoch averages all its batches
        self.train_loss, self.train_penalty = MeanMetric(), MeanMetric()
        for metric in (self.train_loss, self.train_penalty):
            metric.persistent(True)
        self.val_perplexity = Perplexity(ignore_index=Vocabulary.PAD)
        self.test_perplexity = Perplexity(ignore_index=Vocabulary.PAD)
        self.val_metrics = self._caption_metrics()
        self.test_metrics = self._caption_metrics()
        self.samples: dict[str, Any] | None = None

    def _glove(self, path: str) -> torch.Tensor:
        try:
            matrix, found, missing = load_glove(path, self.vocab.words)
        except (OSError, ValueError) as err:
            raise UserError(f"model.glove_path: {err}") from None
        words = len(self.vocab) - len(Vocabulary.SPECIALS)
        example = f" (e.g. {', '.join(missing[:5])})" if missing else ""
        self.glove_report = f"GloVe {path}: {found} of {words} vocabulary words found, {len(missing)} missing{example}"
        rank_zero_info(self.glove_report)
        if found == 0:
            warn(f"{path}: no vocabulary word has a GloVe vector; is it the right file?")
        return matrix

    def _caption_metrics(self) -> nn.ModuleDict:
        embedding = self.glove if hasattr(self, "glove") else self.decoder.embedding.weight
        metrics = {
            "bleu": CorpusBLEU(4),
            "cider_d": CIDErD(),
            "rouge_l": RougeL(),
            "caption_cosine": CaptionCosineSimilarity(embedding, self.vocab),
        }
        if self.hparams.meteor and meteor_available():
            metrics["meteor"] = Meteor()
        return nn.ModuleDict(metrics)

    # -- model -----------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "ImageCaptioner":
        super().train(mode)
        if self.hparams.freeze_encoder:
            self.encoder.eval()  # fixed batch-norm statistics: the cached features stay valid
        return self

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Decoder input of a uint8 batch: pooled ``(B, C)`` (lstm) or annotation vectors ``(B, h*w, C)``."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.hparams.freeze_encoder):
            grid = self.encoder(images).float()  # (B, C, h, w)
        if self.hparams.decoder == "attention":
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
        tokens, scores = beam_search(self.decoder, features, width, hp.max_len, hp.length_penalty)  # (B, L), (B,)
        self.decoder.train(was_training)
        return [self.vocab.decode(row) for row in tokens.cpu()], scores.float()

    def _loss(self, features: torch.Tensor, captions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cross-entropy ignoring padding, the attention penalty (0 for lstm), and the logits ``(B, T-1, V)``."""
        inputs, targets = shift_captions(captions)  # (B, T-1) each
        if self.hparams.decoder == "attention":
            logits, alphas = self.decoder.forward_with_alphas(features, inputs)  # (B, T-1, V), (B, T-1, N)
            penalty = self.decoder.doubly_stochastic_loss(alphas.float(), mask=targets != Vocabulary.PAD)
        else:
            logits = self.decoder(features, inputs)  # (B, T-1, V)
            penalty = logits.new_zeros((), dtype=torch.float32)
        ce = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=Vocabulary.PAD)
        return ce, penalty, logits

    # -- training and evaluation -----------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self.train_loss.reset(), self.train_penalty.reset()  # not called when a run resumes in mid-epoch

    def training_step(self, batch: dict | None, batch_idx: int) -> torch.Tensor:
        if batch is None:  # no image of the batch could be read: a zero loss keeps every DDP process in step
            return zero_loss(self)
        features = self.features(batch["images"], batch["keys"])
        ce, penalty, _ = self._loss(features, batch["captions"])
        loss = ce + self.hparams.attention_penalty * penalty
        B = len(batch["captions"])
        self.train_loss(loss.detach(), B)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=B)
        self.log("train/perplexity", ce.detach().exp(), on_step=True, on_epoch=False, batch_size=B)
        if self.hparams.decoder == "attention":
            self.train_penalty(penalty.detach(), B)
            self.log("train/attention_penalty", self.train_penalty, on_step=True, on_epoch=True, batch_size=B)
        return loss

    def _evaluate(self, batch: dict | None, batch_idx: int, stage: str) -> None:
        if batch is None:  # no image of the batch could be read
            return
        features = self.features(batch["images"], batch["keys"])
        ce, _, logits = self._loss(features, batch["captions"])
        B = len(batch["captions"])
        perplexity = self.val_perplexity if stage == "val" else self.test_perplexity
        perplexity.update(logits.float(), shift_captions(batch["captions"])[1])
        self.log(f"{stage}/loss", ce, on_epoch=True, prog_bar=True, batch_size=B, sync_dist=True)
        self.log(f"{stage}/perplexity", perplexity, on_epoch=True, batch_size=B)
        generated, _ = self.generate(features)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        for name, metric in metrics.items():
            if not (name == "meteor" and self.trainer.sanity_checking):
                metric.update(generated, batch["references"])
        if stage == "val" and batch_idx == 0 and self.hparams.num_samples > 0:
            n = self.hparams.num_samples
            self.samples = {
                "images": batch["images"][:n].cpu(),
                "generated": generated[:n],
                "references": batch["references"][:n],
            }

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def _log_caption_metrics(self, stage: str) -> None:
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        values = {}
        for name, metric in metrics.items():
            if name == "meteor" and self.trainer.sanity_checking:
                continue
            value = metric.compute()  # every rank takes part: compute() gathers the captions
            if isinstance(value, dict):
                values.update({f"{stage}/{k}": v for k, v in value.items()})
            elif not (name == "meteor" and math.isnan(value.item())):
                values[f"{stage}/{name}"] = value
            metric.reset()
        for key, value in values.items():
            self.log(key, value, prog_bar=key == "val/bleu_4", sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self._log_caption_metrics("val")
        if self.samples is not None and not self.trainer.sanity_checking and self.trainer.is_global_zero:
            s, step = self.samples, self.current_epoch
            log_figure(self.logger, "val/samples", caption_samples_figure(**s), step)
            experiment = getattr(self.logger, "experiment", None)
            if hasattr(experiment, "add_text"):
                experiment.add_text("val/captions", caption_samples_markdown(s["generated"], s["references"]), step)
        self.samples = None

    def on_test_epoch_end(self) -> None:
        self._log_caption_metrics("test")

    # -- prediction ----------------------------------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int) -> list[dict]:
        """One row per image: file, caption and score (the length-normalised log-probability of the caption)."""
        if batch is None:  # no image of the batch could be read: they are listed beside the predictions
            return []
        if isinstance(batch, dict):  # a captioning data module's batch: no files, use the keys
            images, files = batch["images"], [str(k) for k in batch["keys"].tolist()]
        else:
            images, files = batch
        captions, scores = self(images)
        return [
            {"file": file, "caption": caption, "score": round(score, 6)}
            for file, caption, score in zip(files, captions, scores.tolist())
        ]

    # -- feature cache, vocabulary files, optimisation and checkpoints --------------------------------------
    def on_fit_start(self) -> None:
        hp = self.hparams
        log_parameter_counts(self, f"freeze_encoder: {str(hp.freeze_encoder).lower()}")
        if hp.freeze_encoder:
            warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode")  # the frozen encoder: intended
        if hp.freeze_encoder and hp.feature_cache != "off":
            path = None
            if hp.feature_cache == "disk":
                folder = Path(self.trainer.log_dir or self.trainer.default_root_dir)
                path = folder / f"feature_cache_rank{self.global_rank}.f32"
            self.cache = FeatureCache(path)
        if self.trainer.is_global_zero:
            self._save_vocab()
            experiment = getattr(self.logger, "experiment", None)
            if hasattr(self, "glove_report") and hasattr(experiment, "add_text"):
                experiment.add_text("glove", self.glove_report, 0)

    def on_fit_end(self) -> None:
        """Report and drop the feature cache; write the hyper-parameters with the final scores (HPARAMS tab)."""
        log_final_hparams(self, {k: v for k, v in self.hparams.items() if k != "vocab"})
        if self.cache is not None:
            cache = self.cache
            rank_zero_info(f"feature cache: {len(cache)} images, {cache.hits} hits, {cache.misses} misses")
            self.cache.close()
            self.cache = None

    def _save_vocab(self) -> None:
        """Write ``vocab.json`` into the log folder and beside the checkpoints."""
        folders = [cb.dirpath for cb in self.trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
        if self.logger is not None and getattr(self.logger, "log_dir", None):  # without a logger: no run folder
            folders.append(self.logger.log_dir)
        for folder in dict.fromkeys(folders):
            self.vocab.save(Path(folder) / "vocab.json")

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return configure(self, params, self.optimizer, self.scheduler, self.hparams.scheduler_interval)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Make the checkpoint self-contained: no weights, GloVe or classifier file is needed to load it.

        The weights are in the state dict, so the file arguments are stored as ``null`` (and the embedding size
        as the GloVe file's dimension): loading never reads, or tries to download, any of them again.
        """
        hp = copy.deepcopy(dict(checkpoint.get("hyper_parameters", {})))
        hp["glove_path"], hp["embed_dim"] = None, int(self.decoder.embedding.embedding_dim)
        init_args = hp.get("encoder", {}).get("init_args") if isinstance(hp.get("encoder"), dict) else None
        if isinstance(init_args, dict):
            init_args.update({k: None for k in ("weights", "init_from") if k in init_args})
        checkpoint["hyper_parameters"] = hp
        if hasattr(self, "glove"):  # caption cosine similarity keeps scoring with the GloVe vectors
            checkpoint["glove"] = self.glove.cpu()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Restore the GloVe vectors that caption cosine similarity scores with (the CLI checks the vocabulary)."""
        fill_metric_states(self, checkpoint)
        if "glove" in checkpoint and not hasattr(self, "glove"):
            self.register_buffer("glove", checkpoint["glove"].to(self.device), persistent=False)
            for metrics in (self.val_metrics, self.test_metrics):
                metrics["caption_cosine"].embedding = self.glove
