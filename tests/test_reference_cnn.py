"""The reference paper's facial CNN baseline: shapes, the paper's parameter count, and that it learns."""

from __future__ import annotations

import pytest
import torch

from bridge.baselines.reference_cnn import ReferenceCNN


def _conv(c_in: int, c_out: int) -> int:
    return c_in * 3 * 3 * c_out + c_out


def test_output_shape_and_finite():
    model = ReferenceCNN().eval()
    logits = model(torch.randn(5, 1, 48, 48))
    assert logits.shape == (5, 7)
    assert torch.isfinite(logits).all()


def test_parameter_count_matches_the_paper_architecture():
    # Conv32, Conv64, Conv128, Conv128 (3x3, valid), then Dense1024 on the 4x4x128 map, Dense7.
    expected = _conv(1, 32) + _conv(32, 64) + _conv(64, 128) + _conv(128, 128) \
        + (4 * 4 * 128 * 1024 + 1024) + (1024 * 7 + 7)
    assert expected == 2_345_607  # the Keras summary of atulapra/Emotion-detection
    model = ReferenceCNN()
    assert sum(p.numel() for p in model.parameters()) == expected
    assert all(p.requires_grad for p in model.parameters())


def test_every_parameter_gets_a_gradient_and_a_step_lowers_the_loss():
    torch.manual_seed(0)
    model = ReferenceCNN(conv_dropout=0.0, dense_dropout=0.0)
    x, y = torch.randn(8, 1, 48, 48), torch.arange(8) % 7
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    opt.step()
    assert torch.nn.functional.cross_entropy(model(x), y) < loss


def test_other_sizes_and_too_small_input():
    assert ReferenceCNN(num_classes=3, in_chans=3, img_size=64)(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    with pytest.raises(ValueError, match="too small"):
        ReferenceCNN(img_size=16)
