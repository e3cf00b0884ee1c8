"""Seam handling: push texel colours outward from UV charts into the empty gutter around them.

A texture optimized through a renderer only receives values where charts are (the coverage mask
from :func:`csdkit.uv.bake.rasterize_uv`). Bilinear and mip-mapped lookups near a chart
border also read texels just *outside* it; if those hold the background, seams show up as dark
(or white) lines. Dilation fills the gutter with colours continued from the charts:

* ``"push_pull"`` (default): a coverage-weighted image pyramid (push: average covered texels
  2x2 -> 1; pull: fill every uncovered texel from the next coarser level). Fills the *whole*
  texture in O(H W) with ``log2(max(H, W))`` levels, so every mip level is clean.
* ``"iterative"``: ``iterations`` rounds of "every uncovered texel next to a covered one takes the
  mean of its covered 8-neighbours"; fills a band ``iterations`` texels wide and leaves the rest.

Covered texels are returned unchanged (bit for bit). Both are plain differentiable PyTorch and run
on the texture's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops._checks import check_choice, check_int, describe

__all__ = ["dilate_texture"]

_FN = "dilate_texture"


def _prepare(texture, mask) -> tuple[torch.Tensor, torch.Tensor, bool]:
    if not isinstance(texture, torch.Tensor) or not texture.is_floating_point():
        got = describe(texture) if isinstance(texture, torch.Tensor) else type(texture).__name__
        raise TypeError(f"{_FN}(): texture must be a float tensor [H, W, C] or [B, H, W, C], got {got}")
    if texture.dim() not in (3, 4):
        raise ValueError(f"{_FN}(): texture must be [H, W, C] or [B, H, W, C], got {describe(texture)}")
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{_FN}(): mask must be a torch.Tensor [H, W] or [B, H, W], "
                        f"got {type(mask).__name__}")
    batched = texture.dim() == 4
    tex = texture if batched else texture[None]
    m = mask[None] if mask.dim() == 2 else mask
    if m.dim() == 4 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.dim() != 3 or m.shape[1:] != tex.shape[1:3] or m.shape[0] not in (1, tex.shape[0]):
        raise ValueError(f"{_FN}(): mask must be [H, W] or [B, H, W] matching texture {list(texture.shape)}, "
                         f"got {describe(mask)}")
    if m.device != tex.device:
        raise ValueError(f"{_FN}(): mask must be on {tex.device} (the texture's device), "
                         f"got {describe(mask)}")
    covered = m > 0.5 if m.is_floating_point() else m.bool()
    return tex, covered.expand(tex.shape[0], -1, -1), batched


def _push_pull(tex: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
    # channels-first working layout: [B, C, H, W] colour and [B, 1, H, W] weight
    c = tex.permute(0, 3, 1, 2)
    w = covered[:, None].to(tex.dtype)
    levels = [(c, w)]
    while min(c.shape[-2:]) > 1:
        cw = F.avg_pool2d(c * w, 2, ceil_mode=True)
        ws = F.avg_pool2d(w, 2, ceil_mode=True)
        has = ws > 0
        c = torch.where(has, cw / ws.clamp_min(1e-12), torch.zeros_like(cw))
        w = has.to(tex.dtype)
        levels.append((c, w))
    filled = levels[-1][0]
    for c, w in reversed(levels[:-1]):
        up = F.interpolate(filled, size=c.shape[-2:], mode="bilinear", align_corners=False)
        filled = torch.where(w > 0, c, up)
    return filled.permute(0, 2, 3, 1)


def _iterative(tex: torch.Tensor, covered: torch.Tensor, iterations: int) -> torch.Tensor:
    c = tex.permute(0, 3, 1, 2)
    w = covered[:, None].to(tex.dtype)
    kernel = torch.ones(1, 1, 3, 3, dtype=tex.dtype, device=tex.device)
    n_ch = c.shape[1]
    for _ in range(iterations):
        if bool((w > 0).all()):
            break
        wsum = F.conv2d(w, kernel, padding=1)
        csum = F.conv2d((c * w).reshape(-1, 1, *c.shape[-2:]), kernel, padding=1).reshape(c.shape)
        grow = (w == 0) & (wsum > 0)
        c = torch.where(grow, csum / wsum.clamp_min(1e-12).expand(-1, n_ch, -1, -1), c)
        w = torch.where(grow, torch.ones_like(w), w)
    return c.permute(0, 2, 3, 1)


def dilate_texture(texture: torch.Tensor, mask: torch.Tensor, *, method: str = "push_pull",
                   iterations: int = 16) -> torch.Tensor:
    """Fill the texels outside the UV charts with colours continued from the charts.

    Args:
        texture: ``[H, W, C]`` or ``[B, H, W, C]`` float (any device), row 0 at the top.
        mask: ``[H, W]`` or ``[B, H, W]`` (``[..., 1]`` accepted) bool, uint8 or float (``> 0.5``)
            on the texture's device: True where a chart covers the texel.
        method: ``"push_pull"`` (fills everything) or ``"iterative"`` (fills a band).
        iterations: band width in texels for ``"iterative"`` (ignored by push-pull).

    Returns:
        A tensor shaped like ``texture``: covered texels unchanged, uncovered ones filled (with
        ``"iterative"``, texels farther than ``iterations`` from every chart keep their value).
        An all-uncovered mask returns the texture unchanged.

    Raises:
        TypeError / ValueError: wrong types, shapes, devices, method or iterations.
    """
    check_choice(_FN, "method", method, ("push_pull", "iterative"))
    check_int(_FN, "iterations", iterations, min_value=0)
    tex, covered, batched = _prepare(texture, mask)
    if method == "push_pull":
        out = _push_pull(tex, covered)
    else:
        out = _iterative(tex, covered, iterations)
    # Views without any coverage stay as they were (nothing to continue from).
    any_cov = covered.flatten(1).any(dim=1)[:, None, None, None]
    out = torch.where(any_cov, out, tex)
    return out if batched else out[0]
