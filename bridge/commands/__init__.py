"""The three commands, ``train``, ``infer`` and ``evaluate``: each a ``main(argv)`` that the scripts at the
repository root (``python train.py``) and the console entry points (``bridge-train``) call."""
