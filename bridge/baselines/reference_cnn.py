"""The reference paper's facial-expression CNN, re-implemented in PyTorch as a per-face baseline.

The paper ("Emotion Recognition System", ``/work/shared/reference-paper.txt``) classifies
Haar-cascade face crops into seven emotions with a Keras CNN; its code follows
atulapra/Emotion-detection: 48x48 grayscale input, Conv32-Conv64-MaxPool-Dropout-Conv128-
MaxPool-Conv128-MaxPool-Dropout-Flatten-Dense1024-Dropout-Dense7, 3x3 "valid" convolutions with
ReLU, 2x2 max-pooling, dropout 0.25 after the conv blocks and 0.5 before the classifier
(2,345,607 parameters). The softmax of the Keras model is left to the loss / caller: ``forward``
returns logits.
"""

from __future__ import annotations

from torch import Tensor, nn


class ReferenceCNN(nn.Module):
    """The paper's 4-conv CNN over ``(b, 1, 48, 48)`` face crops -> logits ``(b, num_classes)``.

    Args:
        num_classes: output classes (the paper's seven emotions).
        in_chans: input channels (1: grayscale, as in the paper).
        img_size: input side in pixels (48, FER-2013's crops); fixes the dense layer's width.
        conv_dropout: dropout after the second and fourth convolution blocks.
        dense_dropout: dropout before the classifier.
    """

    def __init__(self, num_classes: int = 7, in_chans: int = 1, img_size: int = 48,
                 conv_dropout: float = 0.25, dense_dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 32, 3), nn.ReLU(inplace=True),  # (b, 32, s - 2, s - 2)
            nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2), nn.Dropout(conv_dropout),
            nn.Conv2d(64, 128, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(128, 128, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2), nn.Dropout(conv_dropout),  # (b, 128, 4, 4) for 48x48 input
        )
        side = (((img_size - 4) // 2 - 2) // 2 - 2) // 2
        if side < 1:
            raise ValueError(f"img_size {img_size} is too small for four 3x3 convolutions and three poolings")
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * side * side, 1024), nn.ReLU(inplace=True),
            nn.Dropout(dense_dropout),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(b, in_chans, img_size, img_size)`` -> logits ``(b, num_classes)``."""
        return self.head(self.features(x))
