from vlc.tasks.captioner import ImageCaptioner
from vlc.tasks.classifier import ImageClassifier
from vlc.tasks.schedules import OneCycleLR

__all__ = ["ImageCaptioner", "ImageClassifier", "OneCycleLR"]
