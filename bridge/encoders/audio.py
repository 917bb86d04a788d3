"""Audio encoder: an AST-style patch Transformer (Gong et al., Interspeech 2021) over log-mel
filterbanks, built on transformers' ``ASTModel`` so AudioSet-pretrained AST weights load as-is."""

from __future__ import annotations

from pathlib import Path

from einops import repeat
from torch import Tensor, nn
from transformers import ASTConfig, ASTModel

from bridge.config import AudioConfig


def ast_config(config: AudioConfig) -> ASTConfig:
    return ASTConfig(hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
                     num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
                     patch_size=config.patch_size, frequency_stride=config.frequency_stride,
                     time_stride=config.time_stride, max_length=config.max_frames,
                     num_mel_bins=config.num_mel_bins)


class AudioEncoder(nn.Module):
    """AST over ``(b, frames, mels)`` filterbanks -> patch tokens ``(b, 2 + f * t, e)``.

    Args:
        config: the audio encoder's config.
        load_weights: load ``config.weights`` (False when a checkpoint supplies them).
        hf_config_dir: a saved ``ASTConfig`` to build from instead (checkpoint loading).
    """

    def __init__(self, config: AudioConfig, load_weights: bool = True, hf_config_dir: Path | None = None):
        super().__init__()
        self.config = config
        if hf_config_dir is not None:
            self.ast = ASTModel(ASTConfig.from_pretrained(hf_config_dir))
        elif load_weights and config.weights is not None:
            self.ast = ASTModel.from_pretrained(config.weights)
        else:
            self.ast = ASTModel(ast_config(config))
        c = self.ast.config
        self.freq_patches = (c.num_mel_bins - c.patch_size) // c.frequency_stride + 1
        self.time_patches = (c.max_length - c.patch_size) // c.time_stride + 1
        self.out_dim: int = c.hidden_size

    def forward(self, fbank: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode filterbanks.

        Args:
            fbank: ``(b, max_frames, mels)`` normalised log-mel frames, zero-padded.
            mask: ``(b, max_frames)``, True for real frames.

        Returns:
            tokens ``(b, 2 + f * t, e)`` (CLS and distillation first) and their mask.
        """
        stride = self.ast.config.time_stride
        time_mask = mask[:, : self.time_patches * stride : stride]  # (b, t): a patch is real if it starts on audio
        patch_mask = repeat(time_mask, "b t -> b (f t)", f=self.freq_patches)
        token_mask = nn.functional.pad(patch_mask, (2, 0), value=True)  # (b, 2 + f t)
        out = self.ast(input_values=fbank, attention_mask=token_mask.long())
        return out.last_hidden_state, token_mask
