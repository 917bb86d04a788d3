"""The contract every classifier in bridge keeps: :class:`~bridge.model.BridgeModel`, an
:class:`~bridge.ensemble.Ensemble` of them and the :class:`~bridge.baselines.late_fusion.LateFusion`
baseline. Evaluation, the robustness protocols and the predictor call only this.

A classifier encodes a batch once (:meth:`Classifier.encode`), and its head then scores that
encoding under any per-sample presence mask and fill (:meth:`Classifier.head`): one encoding
serves every modality pattern, missing rate and explanation. What an encoding holds is the
classifier's own business; callers only combine encodings (:meth:`Encoding.merge`) and repeat
a single sample's (:meth:`Encoding.expand`).
"""

from __future__ import annotations

from typing import Literal, Protocol, TypeVar, runtime_checkable

from torch import Tensor

from bridge.batch import Batch
from bridge.config import BridgeConfig
from bridge.modality import Modality

Fill = Literal["reconstruct", "zero"]  # how a missing modality enters the fusion: its reconstruction, or zeros
E = TypeVar("E", bound="Encoding")


class Encoding(Protocol):
    """What :meth:`Classifier.encode` returns: per modality, whatever its head needs."""

    def merge(self: E, other: E) -> E:
        """This encoding with ``other``'s modalities replacing (or adding to) its own."""
        ...

    def expand(self: E, n: int) -> E:
        """A one-sample encoding seen ``n`` times (batch size ``n``)."""
        ...


@runtime_checkable
class Classifier(Protocol):
    """A classifier over any non-empty subset of its modalities.

    Attributes:
        config: a :class:`~bridge.config.BridgeConfig` whose labels, modalities and encoder
            configs describe what the classifier takes (preprocessing follows them).
    """

    config: BridgeConfig

    @property
    def modalities(self) -> tuple[Modality, ...]:
        """The modalities it takes, in canonical order."""
        ...

    def encode(self, batch: Batch, views: str = "single") -> Encoding:
        """Encode every modality of its own that ``batch`` carries.

        Args:
            batch: inputs; modalities the classifier lacks are ignored.
            views: the test-time views each face latent averages (:mod:`bridge.views`: ``single``,
                ``mirror`` or ``crops``).
        """
        ...

    def head(self, encoded: Encoding, present: dict[Modality, Tensor], fill: Fill = "reconstruct") -> Tensor:
        """Logits ``(b, classes)``: a softmax gives the class probabilities.

        Args:
            encoded: from :meth:`encode`.
            present: per modality ``(b,)`` bool: which (sample, modality) count as observed; a
                modality with no key counts as missing (:func:`bridge.presence.complete_presence`).
            fill: how a missing modality enters the fusion, where the classifier has one.
        """
        ...
