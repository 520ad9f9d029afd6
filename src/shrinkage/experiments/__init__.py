"""Experiments: training loops and reproductions that combine the pillars with data and models.

- ``shrinkage.experiments.weights`` -- sparse-weight training on MNIST (``TrainConfig``,
  ``train_run``, ``sweep``), the combined sparse-weight and sparse-activation runs;
- ``shrinkage.experiments.finetune`` -- pruning a trained dense model during a short
  fine-tune (``FinetuneConfig``, ``finetune``);
- ``shrinkage.experiments.codes`` -- dictionaries on natural-image patches (``learn``,
  ``compare``);
- ``shrinkage.experiments.codes_sweep`` -- the overcompleteness sweep on streamed patches
  (``sweep``, resumable run by run);
- ``shrinkage.experiments.activations`` -- deep edge-of-chaos networks on MNIST
  (``train_run``, ``reproduce``).

The pillars never import this package; the command line (``shrinkage.cli``) and the
report (``shrinkage.report``) call it.
"""
