from vlc.data.cifar10 import Cifar10DataModule
from vlc.data.classification import ClassificationDataModule
from vlc.data.folder import ImageFolderDataModule
from vlc.data.shapes_classification import ShapesDataModule
from vlc.data.tinyimagenet30 import TinyImageNet30DataModule

__all__ = [
    "Cifar10DataModule",
    "ClassificationDataModule",
    "ImageFolderDataModule",
    "ShapesDataModule",
    "TinyImageNet30DataModule",
]
