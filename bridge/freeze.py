"""Freezing, done once and structurally (as timm's ``freeze``): a frozen encoder's parameters get
no gradient, and it stays in eval mode (dropout off, batch-norm statistics fixed) while the rest
of the model trains. Nothing in a ``forward`` switches modes."""

from __future__ import annotations

from torch import nn

from bridge.encoders.memo import TokenStateMemo


def freeze(module: nn.Module) -> nn.Module:
    """Turn ``module``'s gradients off and put it in eval mode; returns it."""
    module.requires_grad_(False)
    return module.eval()


def tuned_parts(encoder: nn.Module) -> list[nn.Module]:
    """The parts of a frozen encoder that still learn (``text.tune_layers``: its top layers)."""
    return list(encoder.tuned_parts()) if hasattr(encoder, "tuned_parts") else []


def freeze_encoder(encoder: nn.Module) -> nn.Module:
    """:func:`freeze`, then let the encoder's :func:`tuned_parts` learn again; returns it."""
    freeze(encoder)
    for part in tuned_parts(encoder):
        part.requires_grad_(True)
    return encoder


def frozen_encoders(model: nn.Module) -> list[nn.Module]:
    """The encoders of a :class:`~bridge.model.BridgeModel` whose config says ``freeze``."""
    return [model.encoders[m.value] for m, cfg in model.config.encoders.items() if getattr(cfg, "freeze", False)]


def train_mode(model: nn.Module) -> nn.Module:
    """``model.train()``, with its frozen encoders kept in eval mode (what a training loop calls)."""
    model.train()
    for encoder in frozen_encoders(model):
        encoder.eval()
        for part in tuned_parts(encoder):
            part.train()
    return model


def memoise_frozen(model: nn.Module, memo: TokenStateMemo | None) -> None:
    """Let the frozen encoders of ``model`` that support it (face, text, Whisper audio) memoise
    their outputs in ``memo`` (None: stop memoising); see :mod:`bridge.encoders.memo`."""
    for encoder in frozen_encoders(model):
        if hasattr(encoder, "memo"):
            encoder.memo = memo
