"""Inference: :class:`~bridge.inference.predictor.Predictor` (the Python API behind ``infer.py``, also
``from bridge import Predictor``), emotion over time (:mod:`~bridge.inference.timeline`), live camera
and video display (:mod:`~bridge.inference.live`) and batch inputs (:mod:`~bridge.inference.items`).

It never imports :mod:`bridge.train`. Nothing is imported here; import the module you need.
"""
