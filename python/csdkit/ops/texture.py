"""Texture sampling (nearest, bilinear, trilinear mipmapped) with gradients: op and autograd wiring."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .. import _native
from ._checks import check_choice, check_int, check_tensor
from .rasterize import _kernels
from .reference.texture import (
    BOUNDARIES,
    FILTERS,
    build_mipmaps_reference,
    texture_reference,
    uv_derivatives_fd,
)

_FN = "texture"
_FLOATS = (torch.float32, torch.float64)
MAX_MIP_LEVELS = 16


def build_mipmaps(tex: torch.Tensor, max_mip_level: int | None = None) -> list[torch.Tensor]:
    """The mip pyramid of ``tex [B, Ht, Wt, C]``: ``[tex, tex/2, tex/4, ...]`` by 2x2 box filtering.

    Level ``l + 1`` halves level ``l`` (a dimension of 1 stays 1) and exists while level ``l`` is
    not 1x1, each of its dimensions is even or 1, and ``l + 1 <= max_mip_level``. So a
    power-of-two texture gets the full pyramid down to 1x1, and a 768x512 texture stops at 3x2.
    Differentiable (it is plain averaging).
    """
    return build_mipmaps_reference(tex, max_mip_level)


class _Texture(torch.autograd.Function):
    @staticmethod
    def forward(ctx, uv, uv_da, bias, mode: tuple[int, int, bool], *levels):
        filter_id, boundary_id, fd = mode
        b, h, w, _ = uv.shape
        tb, _, _, c = levels[0].shape
        out = levels[0].new_empty(b, h, w, c)
        device, stream = _native.device_args(uv)
        _native.native().raster_texture_forward(
            b, tb, c, h, w, [lv.shape[1] for lv in levels], [lv.shape[2] for lv in levels],
            [_native.data_ptr(_FN, "tex", lv) for lv in levels], _native.data_ptr(_FN, "uv", uv),
            _native.data_ptr(_FN, "uv_da", uv_da), _native.data_ptr(_FN, "mip_level_bias", bias),
            _native.data_ptr(_FN, "out", out), filter_id, boundary_id, fd, _native.dtype_name(uv.dtype),
            device, stream,
        )
        ctx.save_for_backward(uv, uv_da, bias, *levels)
        ctx.mode = mode
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: torch.Tensor):
        uv, uv_da, bias, *levels = ctx.saved_tensors
        filter_id, boundary_id, fd = ctx.mode
        need_uv = ctx.needs_input_grad[0] and filter_id != 0
        need_tex = any(ctx.needs_input_grad[4:])
        grads_none = [None] * len(levels)
        if not (need_uv or need_tex):
            return (None, None, None, None, *grads_none)
        b, h, w, _ = uv.shape
        tb, _, _, c = levels[0].shape
        d_out = d_out.contiguous()
        d_uv = torch.zeros_like(uv) if need_uv else None
        d_levels = [torch.zeros_like(lv) for lv in levels] if need_tex else []
        device, stream = _native.device_args(uv)
        _native.native().raster_texture_backward(
            b, tb, c, h, w, [lv.shape[1] for lv in levels], [lv.shape[2] for lv in levels],
            [_native.data_ptr(_FN, "tex", lv) for lv in levels], _native.data_ptr(_FN, "uv", uv),
            _native.data_ptr(_FN, "uv_da", uv_da), _native.data_ptr(_FN, "mip_level_bias", bias),
            _native.data_ptr(_FN, "d_out", d_out), [_native.data_ptr(_FN, "d_tex", g) for g in d_levels],
            _native.data_ptr(_FN, "d_uv", d_uv), filter_id, boundary_id, fd, _native.dtype_name(uv.dtype),
            device, stream,
        )
        return (d_uv, None, None, None, *(d_levels if need_tex else grads_none))


def texture(
    tex: torch.Tensor,
    uv: torch.Tensor,
    *,
    filter: str = "linear",
    boundary: str = "wrap",
    uv_da: torch.Tensor | None = None,
    mip_level_bias: torch.Tensor | None = None,
    max_mip_level: int | None = None,
) -> torch.Tensor:
    """Sample a texture at per-pixel texture coordinates (nvdiffrast's ``texture`` conventions).

    Texel-centre convention (OpenGL / nvdiffrast): ``uv = (0, 0)`` is the outer corner of texel
    ``tex[.., 0, 0, :]`` and texel ``(i, j)`` (row ``i``, column ``j``) has its centre at
    ``u = (j + 0.5) / Wt``, ``v = (i + 0.5) / Ht``. ``u`` runs along the width, ``v`` along the
    rows: **row 0 of ``tex`` is v = 0**. An image file has its top row first, while OBJ/glTF
    ``v`` conventions differ (glTF: v = 0 at the top row; OBJ: v = 0 at the bottom), so flip ``v``
    (``v -> 1 - v``) or the texture rows when a mesh's UVs assume the bottom row is ``v = 0``.

    Args:
        tex: ``[B, Ht, Wt, C]`` per-image textures, or ``[Ht, Wt, C]`` / ``[1, Ht, Wt, C]`` shared
            by all images; float32 or float64; CPU or CUDA; same dtype and device as ``uv``.
        uv: ``[B, H, W, 2]`` texture coordinates.
        filter: ``"nearest"``, ``"linear"`` (bilinear), ``"linear-mipmap-nearest"`` or
            ``"linear-mipmap-linear"`` (trilinear).
        boundary: ``"wrap"`` (repeat), ``"clamp"`` (to the edge texels' centres) or ``"zero"``
            (texels outside the texture read as 0).
        uv_da: ``[B, H, W, 4]`` screen-space derivatives ``(du/dX, du/dY, dv/dX, dv/dY)`` that
            select the mip level, e.g. from ``interpolate(uv, rast, tri, pos_clip, return_da=True)``.
            With a mipmap filter and neither ``uv_da`` nor ``mip_level_bias`` given, they are
            estimated by finite differences of ``uv`` between neighbouring pixels.
        mip_level_bias: ``[B, H, W]`` added to the mip level (alone: the level itself).
        max_mip_level: coarsest mip level used (default: the whole pyramid, see
            :func:`build_mipmaps`).

    Returns:
        ``[B, H, W, C]`` of tex's dtype and device.

    The mip level is ``0.5 * log2`` of the squared major axis of the pixel's footprint in texels
    (as nvdiffrast computes it), plus the bias, clamped to ``[0, max_mip_level]``; levels are
    blended linearly for ``linear-mipmap-linear``, and ``linear-mipmap-nearest`` uses its floor.
    Differentiable w.r.t. ``tex`` (every filter, through the mip pyramid) and ``uv`` (bilinear
    filters); the mip level itself carries no gradient (none w.r.t. ``uv_da`` or the bias).
    """
    check_choice(_FN, "filter", filter, FILTERS)
    check_choice(_FN, "boundary", boundary, BOUNDARIES)
    check_tensor(_FN, "uv", uv, dtype=_FLOATS, shape=(None, None, None, 2))
    if isinstance(tex, torch.Tensor) and tex.dim() == 3:
        tex = tex[None]
    check_tensor(_FN, "tex", tex, dtype=uv.dtype, shape=(None, None, None, None), device=uv.device)
    b, h, w, _ = uv.shape
    if tex.shape[0] not in (1, b):
        raise ValueError(f"{_FN}(): tex must be [B, Ht, Wt, C] with B = {b} (uv's batch) or 1, "
                         f"got {list(tex.shape)}")
    if min(tex.shape[1:]) < 1:
        raise ValueError(f"{_FN}(): tex must be non-empty [B, Ht, Wt, C], got {list(tex.shape)}")
    mipmapped = filter.startswith("linear-mipmap")
    if max_mip_level is not None:
        check_int(_FN, "max_mip_level", max_mip_level, min_value=0, max_value=MAX_MIP_LEVELS - 1)
    if uv_da is not None:
        check_tensor(_FN, "uv_da", uv_da, dtype=uv.dtype, shape=(b, h, w, 4), device=uv.device)
    if mip_level_bias is not None:
        check_tensor(_FN, "mip_level_bias", mip_level_bias, dtype=uv.dtype, shape=(b, h, w), device=uv.device)
    if not mipmapped:
        uv_da = mip_level_bias = None
    finite_differences = mipmapped and uv_da is None and mip_level_bias is None
    if not _kernels(uv.device):
        if finite_differences:
            uv_da = uv_derivatives_fd(uv.detach())
        return texture_reference(tex, uv, filter, boundary, uv_da, mip_level_bias, max_mip_level)
    levels = build_mipmaps(tex, max_mip_level if max_mip_level is not None else MAX_MIP_LEVELS - 1) \
        if mipmapped else [tex]
    levels = [lv.contiguous() for lv in levels]
    mode = (FILTERS.index(filter), BOUNDARIES.index(boundary), finite_differences)
    uv_da = None if uv_da is None else uv_da.detach().contiguous()
    mip_level_bias = None if mip_level_bias is None else mip_level_bias.detach().contiguous()
    return _Texture.apply(uv.contiguous(), uv_da, mip_level_bias, mode, *levels)
