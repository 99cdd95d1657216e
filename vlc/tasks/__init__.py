from vlc.tasks.classifier import ImageClassifier

__all__ = ["ImageClassifier"]
