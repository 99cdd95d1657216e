from vlc.models.cnn import ResidualCNN
from vlc.models.torchvision_net import TorchvisionNet

__all__ = ["ResidualCNN", "TorchvisionNet"]
