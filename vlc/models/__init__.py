from vlc.models.cnn import ResidualCNN
from vlc.models.encoders import ImageEncoder
from vlc.models.torchvision_net import TorchvisionNet

__all__ = ["ImageEncoder", "ResidualCNN", "TorchvisionNet"]
