"""Test-time views of faces: out of training, a face's latent can be the mean over several views
of its crop (test-time augmentation), as facial-expression work scores its figures.

- ``single``: the crop as decoded (one face encoding per frame);
- ``mirror``: the crop and its mirror image (two);
- ``crops``: five crops of the face zoomed :data:`CROP_ZOOM` times (the centre and the four
  corners) and their mirror images (ten).

The views are chosen per run (``train.py --test-views`` validates with them and records them in
the checkpoint as ``inference.test_views``; ``infer.py`` and ``evaluate.py`` follow the checkpoint
unless told otherwise). The crops' zoom and layout were chosen on FER-2013 validation
(docs/experiments.md, "Test-time views"). Light enough for the scripts' argument parsers: torch
is imported where views are made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

from bridge.config import BridgeConfig

if TYPE_CHECKING:
    from torch import Tensor

TestViews = Literal["single", "mirror", "crops"]
TEST_VIEWS: tuple[str, ...] = get_args(TestViews)
CROP_ZOOM = 1.05  # the crops' zoom: each sees 1/1.05 of the crop's side
_CORNERS = ((0, 0), (-1, -1), (1, -1), (-1, 1), (1, 1))  # the centre, then the corners (x, y)


def check_views(views: str) -> str:
    """``views`` if it names test-time views; otherwise a ``ValueError`` listing them."""
    if views not in TEST_VIEWS:
        raise ValueError(f"unknown test-time views {views!r}: choose one of {', '.join(TEST_VIEWS)}")
    return views


def require_face_views(config: BridgeConfig, views: str) -> None:
    """Raises ``ValueError`` for unknown views, or for views beyond ``single`` on a model that does
    not encode raw faces (feature vectors have no mirror image or crops)."""
    check_views(views)
    if views != "single" and (config.face is None or config.face.kind != "face"):
        raise ValueError(f"test-time views {views!r} need a model with a face encoder (not features)")


def face_views(faces: Tensor, views: str) -> list[Tensor]:
    """The views of normalised face crops ``(..., c, h, w)``, each shaped like ``faces``.

    ``crops`` resamples the crop bilinearly (each corner crop lies inside the face crop, so no
    pixel is invented); ``mirror`` and ``single`` only flip or pass the crop.
    """
    import torch
    import torch.nn.functional as F

    check_views(views)
    if views == "single":
        return [faces]
    if views == "mirror":
        return [faces, faces.flip(-1)]
    shape = faces.shape
    flat = faces.reshape(-1, *shape[-3:])
    scale, reach = 1.0 / CROP_ZOOM, 1.0 - 1.0 / CROP_ZOOM  # normalised coordinates span [-1, 1]
    out = []
    for dx, dy in _CORNERS:
        theta = torch.tensor([[scale, 0.0, dx * reach], [0.0, scale, dy * reach]], dtype=flat.dtype,
                             device=flat.device).expand(len(flat), 2, 3)
        grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
        crop = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False).reshape(shape)
        out += [crop, crop.flip(-1)]
    return out


def checkpoint_views(meta: dict[str, Any]) -> str:
    """The test-time views a checkpoint's (migrated) metadata asks for (``single`` when it says none)."""
    return check_views((meta.get("inference") or {}).get("test_views", "single"))
