"""``EditableTexture``: an existing texture plus a learnable change, confined to a texel mask.

``texture = where(mask, sigmoid(logit(original) + delta), original)`` with ``delta`` the collapse of
a pyramid of zero-initialized logit grids at sizes ``(H, W), (H/2, W/2), ...`` (down to 16 texels on
the short side; each level upsampled onto the next finer one and added), like the texturing job's
default parametrization: coarse levels
average the noisy score-distillation gradient over neighbourhoods so a colour change settles
globally before details move. At step 0 the texture is the original, and outside ``mask`` it is
the original's tensor itself (bit for bit), whatever the optimizer does.

The original's logits are clamped to ``[logit(margin), logit(1 - margin)]``: a saturated input
(pure red ``(1, 0, 0)``) would otherwise need a logit change of ~14 to become green.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops._checks import check_tensor

_FN = "EditableTexture"


class EditableTexture(nn.Module):
    """A learnable edit of ``original`` inside ``mask``.

    Args:
        original: ``[H, W, 3]`` float32 in [0, 1], row 0 at the top (kept as a buffer, unchanged).
        mask: ``[H, W]`` bool, the texels that may change.
        min_size: smallest pyramid level (short side, texels).
        margin: the original is read in logit space clamped to ``[margin, 1 - margin]``.

    Call it to get the texture ``[H, W, 3]`` float32 (differentiable w.r.t. the deltas).
    """

    def __init__(self, original: torch.Tensor, mask: torch.Tensor, *, min_size: int = 16,
                 margin: float = 0.02) -> None:
        super().__init__()
        check_tensor(_FN, "original", original, dtype=torch.float32, shape=(None, None, 3))
        h, w = original.shape[:2]
        check_tensor(_FN, "mask", mask, dtype=torch.bool, shape=(h, w), device=original.device)
        self.register_buffer("original", original.detach().clone())
        self.register_buffer("mask", mask.clone())
        self.register_buffer("base", torch.logit(original.detach().clamp(margin, 1 - margin)).permute(2, 0, 1)
                             .contiguous())
        sizes = [(h, w)]
        while min(sizes[-1]) // 2 >= min_size:
            sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
        self.sizes = sizes
        self.levels = nn.ParameterList([nn.Parameter(torch.zeros(3, a, b, device=original.device))
                                        for a, b in sizes])

    def delta(self) -> torch.Tensor:
        """The logit change ``[3, H, W]``: the pyramid collapsed coarse to fine (upsample the running sum to
        the next level's size, add that level), so only one upsampling runs at the full texture size."""
        total = self.levels[-1]
        for lv, size in zip(reversed(self.levels[:-1]), reversed(self.sizes[:-1]), strict=True):
            total = nn.functional.interpolate(total[None], size=size, mode="bilinear", align_corners=False)[0] + lv
        return total

    def forward(self) -> torch.Tensor:
        edited = torch.sigmoid(self.base + self.delta()).permute(1, 2, 0)
        return torch.where(self.mask[..., None], edited, self.original)
