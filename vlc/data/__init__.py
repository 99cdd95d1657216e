"""Data for vlc: plain datasets in ``vlc.data.datasets``, LightningDataModules in ``vlc.data.modules``.

Configs and checkpoints name classes as ``vlc.data.<Name>`` (``vlc.data.ShapesDataModule``, ``vlc.data.Cifar10``);
each is imported from its module when first asked for, so importing one data module does not import every dataset.
The machinery they share: ``bad_images`` (the policy for unreadable files), ``image_cache``, ``loading`` (resumable
loaders) and ``augment``.
"""

import importlib

_MODULES = {
    "CaptionDataModule": "modules.captioning",
    "Cifar10": "datasets.cifar10",
    "Cifar10DataModule": "modules.cifar10",
    "ClassificationDataModule": "modules.classification",
    "CocoCaptions": "datasets.coco_captions",
    "CocoCaptionsDataModule": "modules.coco_captions",
    "ImageDataModule": "modules.base",
    "ImageFolderDataModule": "modules.image_folder",
    "Shapes": "datasets.shapes",
    "Shards": "datasets.shards",
    "ShapesCaptions": "datasets.shapes",
    "ShapesCaptionsDataModule": "modules.shapes",
    "ShapesDataModule": "modules.shapes",
    "TinyImageNet30": "datasets.tinyimagenet30",
    "TinyImageNet30DataModule": "modules.tinyimagenet30",
}
"""Each public name of ``vlc.data`` and the module, under ``vlc.data``, that defines it."""

__all__ = sorted(_MODULES)


def __getattr__(name: str):
    """The class ``name`` from its module (imported now), as ``from vlc.data import ShapesDataModule`` asks."""
    if name not in _MODULES:
        raise AttributeError(f"module 'vlc.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vlc.data.{_MODULES[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES))
