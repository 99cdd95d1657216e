from vlc.data.captioning import CaptionDataModule
from vlc.data.cifar10 import Cifar10DataModule
from vlc.data.classification import ClassificationDataModule
from vlc.data.coco_captions import CocoCaptionsDataModule
from vlc.data.image_folder import ImageFolderDataModule
from vlc.data.shapes_captions import ShapesCaptionsDataModule
from vlc.data.shapes_classification import ShapesDataModule
from vlc.data.tinyimagenet30 import TinyImageNet30DataModule

__all__ = [
    "CaptionDataModule",
    "Cifar10DataModule",
    "CocoCaptionsDataModule",
    "ShapesCaptionsDataModule",
    "ClassificationDataModule",
    "ImageFolderDataModule",
    "ShapesDataModule",
    "TinyImageNet30DataModule",
]
