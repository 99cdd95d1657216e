from vlc.tasks.captioner import ImageCaptioner
from vlc.tasks.classifier import ImageClassifier

__all__ = ["ImageCaptioner", "ImageClassifier"]
