"""Barycentric interpolation of vertex attributes over a rasterized image: op and autograd wiring."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .. import _native
from ._checks import check_tensor
from .rasterize import _kernels, as_batched_positions, check_tri, resolve
from .reference.interpolate import (
    barycentric_derivatives_reference,
    interpolate_derivatives_reference,
    interpolate_reference,
)

_FN = "interpolate"
_FLOATS = (torch.float32, torch.float64)


class _Interpolate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
        ab, v, c = attr.shape
        b, h, w, _ = rast.shape
        out = attr.new_empty(b, h, w, c)
        device, stream = _native.device_args(attr)
        _native.native().raster_interpolate_forward(
            b, ab, v, c, tri.shape[0], h, w, _native.data_ptr(_FN, "attr", attr),
            _native.data_ptr(_FN, "rast", rast), _native.data_ptr(_FN, "tri", tri),
            _native.data_ptr(_FN, "out", out), _native.dtype_name(attr.dtype), device, stream,
        )
        ctx.save_for_backward(attr, rast, tri)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: torch.Tensor):
        attr, rast, tri = ctx.saved_tensors
        need_attr, need_rast = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_attr or need_rast):
            return None, None, None
        ab, v, c = attr.shape
        b, h, w, _ = rast.shape
        d_out = d_out.contiguous()
        d_attr = torch.zeros_like(attr) if need_attr else None
        d_rast = torch.zeros_like(rast) if need_rast else None
        device, stream = _native.device_args(attr)
        _native.native().raster_interpolate_backward(
            b, ab, v, c, tri.shape[0], h, w, _native.data_ptr(_FN, "attr", attr),
            _native.data_ptr(_FN, "rast", rast), _native.data_ptr(_FN, "tri", tri),
            _native.data_ptr(_FN, "d_out", d_out), _native.data_ptr(_FN, "d_attr", d_attr),
            _native.data_ptr(_FN, "d_rast", d_rast), _native.dtype_name(attr.dtype), device, stream,
        )
        return d_attr, d_rast, None


def _bary_derivatives(pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor) -> torch.Tensor:
    """``(du/dX, du/dY, dv/dX, dv/dY) [B, H, W, 4]`` per pixel (no gradient)."""
    with torch.no_grad():
        if not _kernels(pos.device):
            return barycentric_derivatives_reference(pos, tri, rast)
        b, v, _ = pos.shape
        _, h, w, _ = rast.shape
        pos, rast = pos.detach().contiguous(), rast.detach().contiguous()
        out = torch.empty_like(rast)
        device, stream = _native.device_args(pos)
        _native.native().raster_bary_derivatives(
            b, v, tri.shape[0], h, w, _native.data_ptr(_FN, "pos_clip", pos),
            _native.data_ptr(_FN, "tri", tri),
            _native.data_ptr(_FN, "rast", rast), _native.data_ptr(_FN, "rast_db", out),
            _native.dtype_name(pos.dtype), device, stream,
        )
        return out


def interpolate(
    attr: torch.Tensor,
    rast: torch.Tensor,
    tri: torch.Tensor,
    pos_clip: torch.Tensor | None = None,
    *,
    return_da: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Interpolate per-vertex attributes at every pixel of a rasterized image.

    ``out = u * attr[i0] + v * attr[i1] + (1 - u - v) * attr[i2]`` where ``(i0, i1, i2)`` is the
    pixel's triangle and ``(u, v)`` its barycentrics (``rast[..., :2]``); 0 where
    ``rast[..., 3] == 0``. Same semantics as ``nvdiffrast.torch.interpolate``.

    Args:
        attr: ``[B, V, C]`` float32 or float64 per-image attributes, or ``[V, C]`` / ``[1, V, C]``
            shared by all images; same dtype and device as ``rast``.
        rast: ``[B, H, W, 4]`` output of :func:`csdkit.ops.rasterize` (or nvdiffrast's).
        tri: ``[T, 3]`` int32 vertex indices (the ones ``rast`` was made with), same device.
        pos_clip: optional ``[B, V, 4]`` / ``[V, 4]`` clip-space positions ``rast`` was made
            with. When given, the barycentrics are recomputed from it at the pixel centres (equal
            to ``rast[..., :2]`` up to rounding), so the result is differentiable w.r.t.
            ``pos_clip`` even if ``rast`` is detached.
        return_da: also return the screen-space derivatives of the attributes (needs ``pos_clip``).

    Returns:
        ``out [B, H, W, C]`` (attr's dtype and device); with ``return_da``, also
        ``da [B, H, W, 2 C]`` holding ``(dA/dX, dA/dY)`` per channel in pixel units (``X`` along
        the width, ``Y`` along the rows), e.g. ``uv_da`` for :func:`csdkit.ops.texture`. ``da``
        carries no gradient.

    Differentiable w.r.t. ``attr``, ``rast[..., :2]`` and (when given) ``pos_clip``.
    """
    check_tensor(_FN, "rast", rast, dtype=_FLOATS, shape=(None, None, None, 4))
    if isinstance(attr, torch.Tensor) and attr.dim() == 2:
        attr = attr[None]
    check_tensor(_FN, "attr", attr, dtype=rast.dtype, shape=(None, None, None), device=rast.device)
    b = rast.shape[0]
    if attr.shape[0] not in (1, b):
        raise ValueError(f"{_FN}(): attr must be [B, V, C] with B = {b} (rast's batch) or 1, "
                         f"got {list(attr.shape)}")
    check_tri(_FN, tri, attr.shape[1], rast.device)
    pos = None
    if pos_clip is not None:
        pos = as_batched_positions(_FN, pos_clip)
        check_tensor(_FN, "pos_clip", pos, dtype=rast.dtype, device=rast.device)
        if pos.shape[1] != attr.shape[1] or pos.shape[0] not in (1, b):
            raise ValueError(f"{_FN}(): pos_clip must be [B, V, 4] with B = {b} or 1 and V = {attr.shape[1]} "
                             f"(attr's vertex count), got {list(pos_clip.shape)}")
        if pos.shape[0] != b:
            pos = pos.expand(b, -1, -1)
        rast = resolve(pos, tri, rast)
    elif return_da:
        raise ValueError(f"{_FN}(): return_da=True needs pos_clip (the clip-space positions of the vertices)")
    if not _kernels(rast.device):
        out = interpolate_reference(attr, rast, tri)
    else:
        out = _Interpolate.apply(attr.contiguous(), rast.contiguous(), tri.contiguous())
    if not return_da:
        return out
    rast_db = _bary_derivatives(pos, tri, rast)
    with torch.no_grad():
        da = interpolate_derivatives_reference(attr.detach(), rast.detach(), tri, rast_db)
    return out, da
