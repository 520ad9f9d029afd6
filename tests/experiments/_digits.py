"""Separable synthetic 'digits' for the training-loop tests: MNIST-shaped images whose label
is the argmax of a fixed random projection (learnable in a few steps, no data files)."""

import torch


def digits(n=256, nt=128):
    """(x_train, y_train, x_test, y_test): ``n`` training and ``nt`` test images."""
    g = torch.Generator().manual_seed(0)
    proj = torch.randn(784, 10, generator=g)
    x = torch.rand(n + nt, 1, 28, 28, generator=g)
    y = (x.reshape(len(x), -1) @ proj).argmax(1)
    return x[:n], y[:n], x[n:], y[n:]
