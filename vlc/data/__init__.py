from vlc.data.captioning import CaptionDataModule
from vlc.data.cifar10 import Cifar10, Cifar10DataModule
from vlc.data.classification import ClassificationDataModule
from vlc.data.coco_captions import CocoCaptions, CocoCaptionsDataModule
from vlc.data.image_folder import ImageFolderDataModule
from vlc.data.shapes_captions import ShapesCaptions, ShapesCaptionsDataModule
from vlc.data.shapes_classification import Shapes, ShapesDataModule
from vlc.data.tinyimagenet30 import TinyImageNet30, TinyImageNet30DataModule

__all__ = [
    "CaptionDataModule",
    "Cifar10",
    "Cifar10DataModule",
    "ClassificationDataModule",
    "CocoCaptions",
    "CocoCaptionsDataModule",
    "ImageFolderDataModule",
    "Shapes",
    "ShapesCaptions",
    "ShapesCaptionsDataModule",
    "ShapesDataModule",
    "TinyImageNet30",
    "TinyImageNet30DataModule",
]
