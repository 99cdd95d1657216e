"""Inputs unlike the training data: how far an image's pooled features lie from those of the validation images.

When fitting, the task collects the pooled backbone (encoder) features ``(N, C)`` of the validation images each
validation epoch and keeps their summary (:class:`FeatureStatistics`), which checkpoints carry. An image's distance
is the mean squared z-score of its features, ``mean_c ((f_c - mean_c) / std_c)^2`` (a diagonal Mahalanobis
distance); its ``ood_score`` is that distance over the 99th percentile of the validation images' distances, so that
1 of 100 validation images scores above 1, and images of another kind (photographs for a model of drawn shapes)
score far above it. Confidence alone cannot tell: such a model may call a photograph ``red_ring`` with 0.94.
"""

import torch
from torch import Tensor

CHECKPOINT_KEY = "vlc_input_statistics"
"""Where a checkpoint keeps the summary (older checkpoints have none: no score, no note)."""
MAX_IMAGES = 5000
"""Validation images whose features are kept per epoch (the first ones)."""
QUANTILE = 0.99
"""The share of validation images whose distance an ``ood_score`` of 1 equals."""
SHARE = 0.25
"""The note is printed when more than this share of the predicted images score above 1."""


class FeatureStatistics:
    """Collects pooled features ``(B, C)`` of an epoch's validation images; :meth:`summary` describes them."""

    def __init__(self) -> None:
        self.features: list[Tensor] = []
        self.count = 0

    def reset(self) -> None:
        self.features, self.count = [], 0

    def update(self, pooled: Tensor) -> None:
        """Keep the pooled features ``(B, C)`` of a batch (up to :data:`MAX_IMAGES` images in all)."""
        take = min(len(pooled), MAX_IMAGES - self.count)
        if take > 0:
            self.features.append(pooled[:take].detach().float().cpu())
            self.count += take

    def summary(self) -> dict | None:
        """Mean and standard deviation per channel and the distances' 99th percentile; None under 2 images."""
        if self.count < 2:
            return None
        features = torch.cat(self.features)  # (N, C)
        mean, std = features.mean(dim=0), features.std(dim=0)
        std = std.clamp(min=1e-6 * float(std.max().clamp(min=1e-12)))  # a dead channel must not divide by 0
        stats = {"images": len(features), "mean": mean.tolist(), "std": std.tolist()}
        distances = feature_distance(features, stats)
        stats["distance_q99"] = max(float(torch.quantile(distances, QUANTILE)), 1e-12)
        return stats


def feature_distance(pooled: Tensor, stats: dict) -> Tensor:
    """Each image's mean squared z-score ``(B,)`` against the validation ``stats``."""
    mean = torch.tensor(stats["mean"], device=pooled.device)
    std = torch.tensor(stats["std"], device=pooled.device)
    return (((pooled.float() - mean) / std) ** 2).mean(dim=1)  # (B, C) -> (B,)


def ood_scores(pooled: Tensor, stats: dict) -> list[float]:
    """Each image's distance over the validation images' 99th percentile (above 1: farther than 99 in 100)."""
    return [round(s, 3) for s in (feature_distance(pooled, stats) / stats["distance_q99"]).tolist()]


def ood_note(scores: list[float]) -> str | None:
    """One sentence when more than :data:`SHARE` of the images score above 1, else None."""
    unlike = sum(score > 1 for score in scores)
    if not scores or unlike <= SHARE * len(scores):
        return None
    which = "the image looks" if len(scores) == 1 else f"{unlike} of the {len(scores)} images look"
    return (
        f"{which} unlike the images the model was validated on: their features lie farther from them than "
        f"{QUANTILE:.0%} of the validation images' do (column ood_score > 1); the predictions may mean little"
    )
