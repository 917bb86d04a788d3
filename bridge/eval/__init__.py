"""Evaluation: the modality-pattern and robustness protocols (:mod:`~bridge.eval.protocols`), the
corruptions and summaries they use (:mod:`~bridge.eval.robustness`), the metrics
(:mod:`~bridge.eval.metrics`) and the robustness figures (:mod:`~bridge.eval.robustness_plots`).

It scores any :class:`~bridge.contract.Classifier` and never imports :mod:`bridge.train`. Nothing is
imported here; import the module you need.
"""
