"""Models used by the pillars: LeNet-300-100, LeNet-5, a small ResNet, deep MLPs and CNNs."""

__all__: list[str] = []
