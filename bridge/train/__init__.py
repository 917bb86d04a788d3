"""Training: the loop behind ``train.py`` (:mod:`~bridge.train.trainer`), its objective
(:mod:`~bridge.train.losses`), augmentation, modality mismatch, multi-process training, encoders started
from other checkpoints (:mod:`~bridge.train.transfer`), the run settings (:mod:`~bridge.train.config`) and
the runs benchmarks reuse (:mod:`~bridge.train.runs`).

Training may use evaluation (it validates with :mod:`bridge.eval`); evaluation and inference never import
this package. Nothing is imported here: ``train.py`` reads :mod:`bridge.train.config` for its argument
parser without loading torch.
"""
