"""The models' common docstring text: the activation factory, the readout size and the errors
of a bad factory; the MNIST networks share whole sections (``shrinkage._doc.fill``).
"""

from .._doc import fill, sections

fill_doc = fill(
    returns_logits="""\
torch.nn.Sequential
    The network, mapping (N, 1, 28, 28) images to (N, ``num_classes``) logits.""",
    # the two MNIST networks of the weights benchmarks
    mnist_net_sections=sections(
        parameters="activation, num_classes",
        returns="returns_logits",
        raises="raises_not_module, raises_factory",
    ),
    activation="""\
activation : callable or None, optional
    Zero-argument factory called once per hidden layer, returning an ``nn.Module``
    (e.g. ``nn.ReLU`` or ``lambda: shrinkage.thresholds.ShiftedReLU(0.1)``); each layer
    gets its own module, so a learnable threshold is learned per layer. Default None,
    meaning ``nn.ReLU``.""",
    num_classes="""\
num_classes : int, optional
    Size of the output layer, >= 1. Default 10.""",
    num_classes_readout="""\
num_classes : int, optional
    Size of the readout, >= 1. Default 10.""",
    raises_factory="""\
ValueError
    If ``activation`` is not callable, or returns one module object for two layers.""",
    raises_not_module="""\
ValueError
    If ``num_classes`` is not an integer >= 1, or ``activation`` returns something that
    is not an ``nn.Module``.""",
)
