from vlc.callbacks.checkpoint import Checkpoint
from vlc.callbacks.lookahead import Lookahead
from vlc.callbacks.prediction_writer import PredictionWriter

__all__ = ["Checkpoint", "Lookahead", "PredictionWriter"]
