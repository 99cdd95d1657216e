"""The LightningModule that trains, evaluates and applies an image captioner: CNN encoder + LSTM decoder."""

import math
from collections.abc import Callable
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.text import Perplexity

from vlc.callbacks.caption_baselines import CaptionBaselines
from vlc.callbacks.caption_files import CaptionSamples, VocabularyFile
from vlc.callbacks.feature_cache import FeatureCaching
from vlc.errors import UserError, warn
from vlc.explain.attention import WordAttention, smooth_maps, word_attention
from vlc.explain.ood import ood_scores
from vlc.explain.render import attention_strip
from vlc.loggers import log_text
from vlc.metrics.cider_reward import CiderReward
from vlc.metrics.meteor import meteor_available
from vlc.metrics.scoring import Scoring
from vlc.models.backbone import ImageBackbone
from vlc.models.caption_alignment import caption_loss, shift_captions
from vlc.models.cnn import ResidualCNN
from vlc.models.decoding import Decoding
from vlc.models.feature_cache import CachedEncoder
from vlc.models.glove import glove_embeddings
from vlc.models.lstm_decoder import LSTMDecoder
from vlc.tasks.base import Task
from vlc.tasks.hparams import plain
from vlc.tasks.optim import zero_loss
from vlc.tasks.scst import Baseline, self_critical
from vlc.vocabulary import Vocabulary


def adam(params: Any) -> torch.optim.Optimizer:
    """Adam at 1e-3: the optimizer of both captioning recipes, used when a config names none."""
    return torch.optim.Adam(params, lr=1e-3)


class ImageCaptioner(Task):
    """Encoder + decoder trained with teacher forcing; evaluated and applied by free-running decoding.

    The encoder (an ``ImageBackbone``, which owns its preprocessing) maps uint8 images to a feature grid; a decoder
    that is ``spatial`` (Show, Attend and Tell) gets the grid flattened into annotation vectors, the others (Show
    and Tell) get it average-pooled into one vector. The loss is the cross-entropy of the next word, ignoring
    padding, plus the decoder's weighted penalty (see ``vlc.models.caption_alignment``). Validation and test decode
    captions free-running (``decoding``: greedy or batched beam search, exactly as ``vlc predict``) and log the
    scores of ``scoring``: corpus BLEU-1..4, CIDEr-D, ROUGE-L, caption cosine similarity and optionally METEOR. The
    task brings its own callbacks (:meth:`configure_callbacks`): the first validation batch's sample captions on
    the dashboard and ``vocab.json`` (``vlc.callbacks.caption_files``), the baselines of ``vlc validate``/``test``
    (``vlc.callbacks.caption_baselines``) and the feature cache's lifetime (``vlc.callbacks.feature_cache``).

    Args:
        encoder: the image encoder, called with no argument; in YAML the ``class_path`` of a backbone family
            (``vlc.models.ResidualCNN``, ``AirbenchNet`` or ``TorchvisionBackbone``) with its ``init_args``;
            ``null``: a ``ResidualCNN`` with its defaults (a default class would hand its options, e.g. its
            ``widths``, to the class a config names: jsonargparse keeps the options two classes share).
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
        feature_cache: with a frozen encoder (``vlc.models.feature_cache.CachedEncoder``): ``auto`` (default: in
            memory when the estimated size of every training and validation image's features fits in half the
            available memory, else on disk), ``memory`` (falls back to disk with a warning when it would not fit),
            ``disk`` (a memory-mapped file under the run's log folder, removed at the end) or ``off``. The choice
            and size are printed; ``vlc.callbacks.feature_cache`` opens and drops the cache.
        feature_dtype: how cached features are stored: ``float32``, or ``float16`` (half the memory and disk).
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
        decoding: how captions are generated (:class:`vlc.models.decoding.Decoding`: ``strategy``, ``beam_width``,
            ``max_len``, ``length_penalty``, ``min_len``, ``no_repeat_ngram``, ``banned_endings``,
            ``num_captions``), e.g. ``decoding: {strategy: beam, beam_width: 5}``.
        scoring: how they are scored and shown (:class:`vlc.metrics.scoring.Scoring`: ``tokenizer``, ``meteor``,
            ``num_samples``, ``baselines``).
        monitor: the validation score that chooses the best checkpoint (``best-epochNN-bleu4...ckpt`` or
            ``best-epochNN-ciderd...ckpt``) and that ``ReduceLROnPlateau`` follows: ``val/bleu_4`` or ``val/cider_d``.
        scst_from_epoch: from this epoch on, self-critical sequence training (``vlc.tasks.scst``) replaces the
            cross-entropy: captions sampled from the decoder are rewarded with their CIDEr-D (document frequencies of
            the training captions) against a baseline; ``null``: cross-entropy throughout.
        scst_samples: captions sampled per training caption in self-critical epochs.
        scst_baseline: ``greedy`` (the reward of the greedy caption, Rennie et al.) or ``mean`` (the mean reward of
            the other samples, needs ``scst_samples`` >= 2).
        scst_lr_scale: the learning rates are multiplied by this once, when self-critical training starts (the
            references use a learning rate about 10 times lower for it).
    """

    KIND = "captioning"
    PREDICT_CONFIG = "configs/predict/caption.yaml"
    BACKBONE = "encoder"
    EVALUATION_ARGS = ("decoding", "scoring")
    """Arguments that change how captions are decoded and scored, not the weights: their values given with
    ``--ckpt_path`` (``vlc validate``/``test``/``predict``/a resumed ``fit``) replace the checkpoint's."""
    MONITORS = {
        "val/bleu_4": ("val/bleu_4", "max", "best-epoch{epoch:02d}-bleu4{val/bleu_4:.4f}"),
        "val/cider_d": ("val/cider_d", "max", "best-epoch{epoch:02d}-ciderd{val/cider_d:.4f}"),
    }
    """The scores ``monitor`` may name: metric, mode and the best checkpoints' file name."""
    MONITOR = MONITORS["val/bleu_4"]

    @classmethod
    def monitor_for(cls, init_args) -> tuple[str, str, str]:
        return cls.MONITORS[init_args.get("monitor") or "val/bleu_4"]

    def __init__(
        self,
        encoder: Callable[[], ImageBackbone] | None = None,
        decoder: Callable[[int, int, int], nn.Module] = LSTMDecoder,
        freeze_encoder: bool | str | list[str | int] = False,
        finetune_from_epoch: NonNegativeInt = 0,
        pretrained_lr_scale: PositiveFloat = 1.0,
        feature_cache: Literal["auto", "memory", "disk", "off"] = "auto",
        feature_dtype: Literal["float32", "float16"] = "float32",
        init_from: str | None = None,
        glove_path: str | None = None,
        train_embeddings: bool = True,
        attention_grid: PositiveInt | None = None,
        vocab: dict | None = None,
        optimizer: OptimizerCallable = adam,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["step", "epoch"] = "step",
        decoding: Decoding = Decoding(),  # noqa: B008 (frozen dataclasses: nothing changes a shared default)
        scoring: Scoring = Scoring(),  # noqa: B008
        monitor: Literal["val/bleu_4", "val/cider_d"] = "val/bleu_4",
        scst_from_epoch: NonNegativeInt | None = None,
        scst_samples: PositiveInt = 1,
        scst_baseline: Baseline = "greedy",
        scst_lr_scale: PositiveFloat = 1.0,
    ) -> None:
        super().__init__()
        if vocab is None:
            raise UserError("model.vocab is not set: it comes from the data module, or from --ckpt_path")
        try:
            self.vocab = Vocabulary.from_dict(vocab)
        except ValueError as err:
            raise UserError(f"model.vocab: {err}") from None
        self.decoding, self.scoring = _options(decoding, Decoding, "decoding"), _options(scoring, Scoring, "scoring")
        unknown = [w for w in self.decoding.banned_endings if self.vocab.index(w) < len(Vocabulary.SPECIALS)]
        if unknown:
            raise UserError(f"model.decoding.banned_endings: {unknown} are not words of the vocabulary")
        if scst_baseline == "mean" and scst_samples < 2:
            raise UserError("model.scst_baseline: mean needs model.scst_samples of at least 2, got 1")
        self.MONITOR = self.monitor_for({"monitor": monitor})
        self.reward: CiderReward | None = None  # built from the training captions when self-critical training starts
        self.save_hyperparameters()  # through the CLI, encoder/decoder/optimizer/scheduler are saved as their config
        self.hparams.update(plain({**self.hparams, "decoding": self.decoding, "scoring": self.scoring}))
        self.optimizer, self.scheduler = optimizer, scheduler
        self.encoder = (encoder or ResidualCNN)()
        self.decoder = decoder(len(self.vocab), self.encoder.num_features, Vocabulary.PAD)
        if glove_path:  # filled when fitting starts; a checkpoint holds the vectors (caption cosine scores with them)
            self.register_buffer("glove", torch.zeros_like(self.decoder.embedding.weight))
        self.decoder.embedding.weight.requires_grad_(train_embeddings)
        if not train_embeddings and not glove_path:
            warn("model.train_embeddings: false without model.glove_path keeps random word embeddings fixed")
        self.encoder_frozen_layers = {True: "all", False: "none"}.get(freeze_encoder, freeze_encoder)
        self.encoder.freeze(self.encoder_frozen_layers)  # what the optimizer will train, from its first step
        if self.scoring.meteor and not meteor_available():
            warn("model.scoring.meteor: METEOR needs Java on the PATH (not found); it is skipped")
        self.features = CachedEncoder(self.encode, self.encoder)  # a cache serves while the encoder is frozen
        # epoch averages of training whose state is saved in checkpoints: a resumed epoch averages all its batches
        self.train_loss, self.train_penalty = MeanMetric(), MeanMetric()
        self.train_reward, self.train_reward_baseline = MeanMetric(), MeanMetric()
        for metric in (self.train_loss, self.train_penalty, self.train_reward, self.train_reward_baseline):
            metric.persistent(True)
        self.val_perplexity = Perplexity(ignore_index=Vocabulary.PAD)
        self.test_perplexity = Perplexity(ignore_index=Vocabulary.PAD)
        self.val_metrics = self.caption_metrics("val/")
        self.test_metrics = self.caption_metrics("test/")

    def configure_callbacks(self) -> list[L.Callback]:
        """Sample captions on the dashboard, ``vocab.json``, the evaluation baselines and the feature cache."""
        cache = FeatureCaching(self.hparams.feature_cache, self.hparams.feature_dtype)
        return [CaptionSamples(), VocabularyFile(self.vocab), CaptionBaselines(self.scoring.baselines), cache]

    def caption_metrics(self, prefix: str) -> MetricCollection:
        """The scores of ``scoring`` (:meth:`vlc.metrics.scoring.Scoring.metrics`) for names under ``prefix``.

        Caption cosine scores with the GloVe vectors, else with the live learnt embedding: the collections are
        built per stage, not cloned, so that the embedding stays shared.
        """
        embedding = self.glove if hasattr(self, "glove") else self.decoder.embedding.weight
        return self.scoring.metrics(prefix, embedding, self.vocab)

    # -- model -----------------------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Decoder input of a uint8 batch: annotation vectors ``(B, h*w, C)`` (spatial decoders) or ``(B, C)``."""
        grid = self.encode_grid(images)  # (B, C, h, w)
        if self.decoder.spatial:
            return grid.flatten(2).transpose(1, 2).contiguous()  # (B, h*w, C)
        return grid.mean(dim=(2, 3))  # (B, C)

    def encode_grid(self, images: torch.Tensor) -> torch.Tensor:
        """The grid ``(B, C, h, w)`` a spatial decoder attends over (pooled to ``attention_grid`` when it is set)."""
        trains = any(p.requires_grad for p in self.encoder.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and trains):
            grid = self.encoder(images).float()  # (B, C, h, w)
        if self.decoder.spatial and self.hparams.attention_grid:
            grid = F.adaptive_avg_pool2d(grid, self.hparams.attention_grid)  # (B, C, g, g)
        return grid

    def forward(self, images: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        """Captions of a uint8 batch ``(B, 3, H, W)`` and their scores (length-normalised log-probabilities)."""
        captions, scores, _ = self.generate(self.encode(images))
        return captions, scores

    @torch.no_grad()
    def generate(self, features: torch.Tensor, num_return: int = 1) -> tuple[list, torch.Tensor, torch.Tensor]:
        """Free-running decoding of encoder features: greedy (= beam width 1, no normalisation) or beam search.

        Returns:
            ``(captions, scores, ended)``: per image its caption, score (the length-normalised log-probability)
            and whether it ended with ``<end>`` (not cut at ``max_len``); with ``num_return > 1`` per image lists
            of its best captions and ``(B, num_return)`` tensors, best first.
        """
        was_training = self.decoder.training
        self.decoder.eval()
        tokens, scores = self.decoding.search(self.decoder, features, self.vocab, num_return)
        # tokens (B, L) or (B, R, L); scores (B,) or (B, R)
        self.decoder.train(was_training)
        ended = (tokens == Vocabulary.END).any(dim=-1)
        captions = [self.vocab.decode(row) for row in tokens.flatten(0, -2).cpu()]
        if num_return > 1:
            captions = [captions[i : i + num_return] for i in range(0, len(captions), num_return)]
        return captions, scores.float(), ended

    # -- training and evaluation -----------------------------------------------------------------------------
    def on_train_start(self) -> None:
        self._schedule_encoder()  # the epoch is known now, also when a run resumes
        self._schedule_scst()

    def on_train_epoch_start(self) -> None:
        for metric in (self.train_loss, self.train_penalty, self.train_reward, self.train_reward_baseline):
            metric.reset()  # not called when a run resumes in mid-epoch
        self._schedule_encoder()
        self._schedule_scst()

    def self_critical_epoch(self) -> bool:
        """Whether this epoch trains by self-critical sequence training (``scst_from_epoch``)."""
        start = self.hparams.get("scst_from_epoch")
        return start is not None and self.current_epoch >= start

    def _schedule_scst(self) -> None:
        """Build the reward from the training captions and scale the learning rates once, when SCST starts.

        The optimizer's parameter groups carry the mark of the scaling, so a resumed run does not scale them again.
        """
        if not self.self_critical_epoch():
            return
        if self.reward is None:
            self.reward = CiderReward(self.trainer.datamodule.datasets["train"].references)
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                if not group.get("scst_scaled"):
                    group["lr"] *= self.hparams.scst_lr_scale
                    group["scst_scaled"] = True

    def encoder_waits(self) -> bool:
        """Whether the whole encoder is frozen this epoch (``freeze_encoder: true``, or before fine-tuning starts)."""
        return self.encoder_frozen_layers == "all" or self.current_epoch < self.hparams.finetune_from_epoch

    def _schedule_encoder(self) -> None:
        """Freeze the whole encoder until ``finetune_from_epoch``, then only ``freeze_encoder``'s layers.

        The parameters it releases are in the optimizer from its first step (see ``__init__``), so a resumed run
        restores their state; the feature cache serves only while the whole encoder is frozen (``FeatureCaching``).
        """
        self.encoder.freeze("all" if self.encoder_waits() else self.encoder_frozen_layers)

    def training_step(self, batch: dict | None, batch_idx: int) -> torch.Tensor:
        if batch is None:  # no image of the batch could be read: a zero loss keeps every DDP process in step
            return zero_loss(self)
        features = self.features(batch["images"], batch["keys"])
        if self.self_critical_epoch():
            return self.self_critical_step(features, batch["references"])
        ce, penalty, _ = caption_loss(self.decoder, features, batch["captions"])
        loss = ce + self.decoder.penalty_weight * penalty
        B = len(batch["captions"])
        self.train_loss(loss.detach(), B)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=B)
        self.log("train/perplexity", ce.detach().exp(), on_step=True, on_epoch=False, batch_size=B)
        self.train_penalty(penalty.detach(), B)
        self.log("train/penalty", self.train_penalty, on_step=True, on_epoch=True, batch_size=B)
        return loss

    def self_critical_step(self, features: torch.Tensor, references: list[list[str]]) -> torch.Tensor:
        """The self-critical loss of a batch (``vlc.tasks.scst``), logging the rewards of samples and baseline."""
        hp = self.hparams
        result = self_critical(
            self.decoder, features, references, self.reward, self.vocab, self.decoding.max_len,
            hp.scst_samples, hp.scst_baseline,
        )  # fmt: skip
        B = len(references)
        self.train_loss(result.loss.detach(), B)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=B)
        for name, metric, value in (
            ("train/reward", self.train_reward, result.reward),
            ("train/reward_baseline", self.train_reward_baseline, result.baseline),
        ):
            metric(value, B)
            self.log(name, metric, on_step=True, on_epoch=True, prog_bar=name == "train/reward", batch_size=B)
        return result.loss

    def _evaluate(self, batch: dict | None, batch_idx: int, stage: str) -> dict | None:
        if batch is None:  # no image of the batch could be read
            return
        features = self.features(batch["images"], batch["keys"])
        if stage == "val":
            self.collect_features(pooled(features))
        ce, _, logits = caption_loss(self.decoder, features, batch["captions"])
        B = len(batch["captions"])
        perplexity = self.val_perplexity if stage == "val" else self.test_perplexity
        perplexity.update(logits.float(), shift_captions(batch["captions"])[1])
        self.log(f"{stage}/loss", ce, on_epoch=True, prog_bar=True, batch_size=B, sync_dist=True)
        self.log(f"{stage}/perplexity", perplexity, on_epoch=True, batch_size=B)
        generated, _, ended = self.generate(features)
        if not self.trainer.sanity_checking:  # corpus scores of the two sanity-check batches would mean nothing
            metrics = self.val_metrics if stage == "val" else self.test_metrics
            metrics.update(generated, batch["references"], ended=ended)
        if stage == "val" and batch_idx == 0 and self.scoring.num_samples > 0:  # shown by callbacks.CaptionSamples
            n = self.scoring.num_samples
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
        self.summarise_features()

    def on_test_epoch_end(self) -> None:
        self._log_caption_metrics("test")

    # -- prediction ----------------------------------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int) -> list[dict]:
        """One row per image: file, caption and score (the length-normalised log-probability of the caption).

        With ``num_captions > 1`` the row also lists the best captions with their scores as ``alternatives``. With
        the validation images' statistics (a checkpoint of this version) also ``ood_score`` (``vlc.explain.ood``:
        above 1, the image's features lie farther from theirs than 99 in 100 of them).
        """
        if batch is None:  # no image of the batch could be read: they are listed beside the predictions
            return []
        files = batch["files"] if "files" in batch else [str(k) for k in batch["keys"].tolist()]  # a split: its keys
        n = self.decoding.num_captions
        features = self.encode(batch["images"])
        captions, scores, _ = self.generate(features, n)
        ood = ood_scores(pooled(features), self.input_statistics) if self.input_statistics else None
        rows = []
        for file, caption, score in zip(files, captions, scores.tolist()):
            if n == 1:
                rows.append({"file": file, "caption": caption, "score": round(score, 6)})
            else:
                alternatives = [[c, round(s, 6)] for c, s in zip(caption, score) if math.isfinite(s)]
                best = {"file": file, "caption": caption[0], "score": alternatives[0][1]}
                rows.append({**best, "alternatives": alternatives})
        if ood is not None:
            rows = [{**row, "ood_score": score} for row, score in zip(rows, ood)]
        return rows

    # -- explanations ------------------------------------------------------------------------------------------
    def cannot_explain(self) -> str | None:
        """Why this captioner's predictions have no attention maps (a decoder without attention), or None."""
        if hasattr(self.decoder, "forward_with_alphas"):
            return None
        name = type(self.decoder).__name__
        return f"its decoder {name} has no attention over the image (vlc.models.AttentionLSTMDecoder has)"

    def word_attention(self, images: torch.Tensor, captions: list[str]) -> list[WordAttention]:
        """Per caption its words, the decoder's weights over the grid for each word and those weights as maps.

        The decoder is run again teacher-forced on the captions (``vlc.explain.attention``); the maps are the
        weights smoothed over the images' size.
        """
        grid = self.encode_grid(images)  # (B, C, h, w)
        features = grid.flatten(2).transpose(1, 2).contiguous()  # (B, N, C)
        words = [caption.split() for caption in captions]
        length = max(1, max(len(w) for w in words))
        tokens = torch.full((len(words), length), Vocabulary.PAD, dtype=torch.long, device=images.device)
        tokens[:, 0] = Vocabulary.START
        for row, caption in enumerate(words):  # inputs <start> w_1 ... w_{n-1}: the step that predicts w_t
            tokens[row, 1 : len(caption)] = torch.tensor([self.vocab.index(w) for w in caption[:-1]], dtype=torch.long)
        alphas = word_attention(self.decoder, features, tokens)  # (B, T, N)
        size, cells = tuple(images.shape[-2:]), tuple(grid.shape[-2:])
        weights = [a[: len(w)].view(-1, *cells) for w, a in zip(words, alphas)]  # (T, h, w) each
        return [WordAttention(w, a, smooth_maps(a.flatten(1), cells, size)) for w, a in zip(words, weights)]

    def explain(self, images: torch.Tensor, rows: list[dict]) -> list:
        """One attention strip per row of :meth:`predict_step` (same order): a frame per word of its caption."""
        attention = self.word_attention(images, [row["caption"] for row in rows])
        return [attention_strip(image, a.maps, a.words) for image, a in zip(images, attention)]

    # -- pre-trained files, feature cache and optimisation -------------------------------------------------
    def pretrained_reports(self) -> list[str | None]:
        """The encoder's weights and ``init_from``, then the GloVe vectors (also shown on the dashboard)."""
        reports = super().pretrained_reports()
        if self.hparams.glove_path:  # the vectors fill the word embeddings and the buffer caption cosine scores with
            matrix, self.glove_report = glove_embeddings(self.hparams.glove_path, self.vocab.words, self.glove.shape[1])
            with torch.no_grad():
                self.glove.copy_(matrix)
                self.decoder.embedding.weight.copy_(matrix)
            reports.append(self.glove_report)
        return reports

    def frozen_note(self) -> str:
        note = f"freeze_encoder: {self.encoder_frozen_layers}"
        if self.encoder_frozen_layers != "all" and self.hparams.finetune_from_epoch:
            note += f", the whole encoder until epoch {self.hparams.finetune_from_epoch}"
        return note

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.trainer.ckpt_path is None and self.hparams.glove_path:
            log_text(self.trainer, "glove", self.glove_report, 0)


def pooled(features: torch.Tensor) -> torch.Tensor:
    """The decoder input averaged over the grid: ``(B, N, C)`` annotation vectors or ``(B, C)`` -> ``(B, C)``."""
    return features.mean(dim=1) if features.dim() == 3 else features


def _options(value: Any, kind: type, key: str) -> Any:
    """``value`` as a ``kind`` dataclass (a dict when a checkpoint is loaded without the CLI), checked."""
    if isinstance(value, kind):
        return value
    try:
        return kind(**value)
    except TypeError as err:  # an unknown field
        raise UserError(f"model.{key}: {err}") from None
