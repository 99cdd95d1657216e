from vlc.models.airbench import AirbenchNet
from vlc.models.attention_decoder import AttentionLSTMDecoder
from vlc.models.backbone import ImageBackbone
from vlc.models.cnn import ResidualCNN
from vlc.models.lstm_decoder import LSTMDecoder
from vlc.models.torchvision_body import TorchvisionBackbone

__all__ = [
    "AirbenchNet",
    "AttentionLSTMDecoder",
    "ImageBackbone",
    "LSTMDecoder",
    "ResidualCNN",
    "TorchvisionBackbone",
]
