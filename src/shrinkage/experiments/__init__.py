"""Experiments: training loops and reproductions that combine the pillars with data and models.

- :mod:`shrinkage.experiments.weights` -- sparse-weight training on MNIST (``TrainConfig``,
  ``train_run``, ``sweep``), the combined sparse-weight and sparse-activation runs;
- :mod:`shrinkage.experiments.finetune` -- pruning a trained dense model during a short
  fine-tune (``FinetuneConfig``, ``finetune``);
- :mod:`shrinkage.experiments.codes` -- dictionaries on natural-image patches (``learn``,
  ``compare``);
- :mod:`shrinkage.experiments.codes_sweep` -- the overcompleteness sweep on streamed patches
  (``sweep``, resumable run by run);
- :mod:`shrinkage.experiments.activations` -- deep edge-of-chaos networks on MNIST
  (``train_run``, ``reproduce``).

The pillars never import this package; the command line (:mod:`shrinkage.cli`) and the
report (:mod:`shrinkage.report`) call it.
"""
