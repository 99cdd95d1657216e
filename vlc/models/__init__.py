from vlc.models.attention_decoder import AttentionLSTMDecoder
from vlc.models.backbone import ImageBackbone
from vlc.models.lstm_decoder import LSTMDecoder

__all__ = ["AttentionLSTMDecoder", "ImageBackbone", "LSTMDecoder"]
