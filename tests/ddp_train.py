"""``train.py`` with every dropout layer off: the helper ``test_distributed.py`` launches under
``torchrun``. Layer dropout draws from each process's own random stream, so runs with different
process counts could not be compared step for step with it on. Run from the repository root as a
module (``torchrun ... -m tests.ddp_train``), so that ``bridge`` is this checkout's."""

from __future__ import annotations

import sys

from torch import nn

import bridge.train.trainer
from bridge.commands import train


class NoDropoutModel(bridge.train.trainer.BridgeModel):
    def __init__(self, config):
        super().__init__(config)
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
            for name in ("dropout", "dropout_prob"):  # attention dropout passed to scaled_dot_product_attention
                if isinstance(getattr(module, name, None), float):
                    setattr(module, name, 0.0)


def main(argv: list[str] | None = None) -> int:
    bridge.train.trainer.BridgeModel = NoDropoutModel
    return train.main(argv)


if __name__ == "__main__":
    sys.exit(main())
