"""Models used by the pillars: LeNet-300-100, LeNet-5, a small ResNet, deep MLPs and CNNs."""

from .lenet import lenet5, lenet_300_100
from .mlp import deep_cnn, mlp  # activations pillar
from .resnet import resnet_small

__all__: list[str] = ["lenet_300_100", "lenet5", "resnet_small", "mlp", "deep_cnn"]
