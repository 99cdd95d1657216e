from vlc.data.classification import ClassificationDataModule
from vlc.data.folder import ImageFolderDataModule
from vlc.data.shapes_classification import ShapesDataModule
from vlc.data.tinyimagenet30 import TinyImageNet30DataModule

__all__ = [
    "ClassificationDataModule",
    "ImageFolderDataModule",
    "ShapesDataModule",
    "TinyImageNet30DataModule",
]
