"""Triangle rasterization with nvdiffrast's output conventions: the op and its autograd wiring."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .. import _native
from ._checks import check_int, check_tensor
from .reference.rasterize import rasterize_reference, resolve_reference

_FN = "rasterize"
_FLOATS = (torch.float32, torch.float64)
MAX_RESOLUTION = 16384


def _kernels(device: torch.device) -> bool:
    """Whether the compiled raster kernels run for ``device`` (else the pure-PyTorch reference)."""
    return _native.use_native(device) and hasattr(_native.native(), "raster_forward")


def check_tri(fn: str, tri, n_vertices: int, device: torch.device) -> torch.Tensor:
    """Validate ``tri`` (int32 ``[T, 3]`` on ``device``, indices in ``[0, n_vertices)``)."""
    check_tensor(fn, "tri", tri, dtype=torch.int32, shape=(None, 3), device=device)
    if tri.numel() > 0:
        lo_hi = torch.aminmax(tri)
        lo, hi = int(lo_hi.min), int(lo_hi.max)
        if lo < 0 or hi >= n_vertices:
            raise ValueError(
                f"{fn}(): tri indices must be in [0, {n_vertices - 1}] (there are {n_vertices} vertices), "
                f"got indices in [{lo}, {hi}]"
            )
    return tri


def check_resolution(fn: str, resolution) -> tuple[int, int]:
    """``resolution`` as ``(H, W)``: an int (square) or a pair of ints in ``[1, MAX_RESOLUTION]``."""
    if isinstance(resolution, int) and not isinstance(resolution, bool):
        resolution = (resolution, resolution)
    if not isinstance(resolution, (tuple, list)) or len(resolution) != 2:
        raise TypeError(f"{fn}(): resolution must be an int or a pair (H, W) of ints, got {resolution!r}")
    h = check_int(fn, "resolution[0] (height)", resolution[0], min_value=1, max_value=MAX_RESOLUTION)
    w = check_int(fn, "resolution[1] (width)", resolution[1], min_value=1, max_value=MAX_RESOLUTION)
    return h, w


def as_batched_positions(fn: str, pos_clip) -> torch.Tensor:
    """Validate clip-space positions ``[B, V, 4]`` or ``[V, 4]`` and return them as ``[B, V, 4]``."""
    if isinstance(pos_clip, torch.Tensor) and pos_clip.dim() == 2:
        check_tensor(fn, "pos_clip", pos_clip, dtype=_FLOATS, shape=(None, 4))
        return pos_clip[None]
    check_tensor(fn, "pos_clip", pos_clip, dtype=_FLOATS, shape=(None, None, 4))
    if pos_clip.shape[0] < 1:
        raise ValueError(f"{fn}(): pos_clip must hold at least one image, got shape {list(pos_clip.shape)}")
    return pos_clip


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos: torch.Tensor, tri: torch.Tensor, height: int, width: int) -> torch.Tensor:
        mod = _native.native()
        b, v, _ = pos.shape
        rast = pos.new_empty(b, height, width, 4)
        device, stream = _native.device_args(pos)
        mod.raster_forward(
            b, v, tri.shape[0], height, width, _native.data_ptr(_FN, "pos_clip", pos),
            _native.data_ptr(_FN, "tri", tri), _native.data_ptr(_FN, "rast", rast),
            _native.dtype_name(pos.dtype), device, stream,
        )
        ctx.save_for_backward(pos, tri, rast)
        return rast

    @staticmethod
    @once_differentiable
    def backward(ctx, d_rast: torch.Tensor):
        pos, tri, rast = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        return resolve_backward(pos, tri, rast, d_rast), None, None, None


def resolve_backward(pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor,
                     d_rast: torch.Tensor) -> torch.Tensor:
    """Gradient ``[B, V, 4]`` w.r.t. ``pos`` of the ``(u, v, z/w)`` channels of ``rast`` (compiled)."""
    b, v, _ = pos.shape
    _, h, w, _ = rast.shape
    d_rast = d_rast.contiguous()
    d_pos = torch.zeros_like(pos)
    device, stream = _native.device_args(pos)
    _native.native().raster_resolve_backward(
        b, v, tri.shape[0], h, w, _native.data_ptr(_FN, "pos_clip", pos), _native.data_ptr(_FN, "tri", tri),
        _native.data_ptr(_FN, "rast", rast), _native.data_ptr(_FN, "d_rast", d_rast),
        _native.data_ptr(_FN, "d_pos", d_pos), _native.dtype_name(pos.dtype), device, stream,
    )
    return d_pos


class _Resolve(torch.autograd.Function):
    """``(u, v, z/w, id + 1)`` recomputed from ``pos`` for the triangle ids of ``rast`` (compiled)."""

    @staticmethod
    def forward(ctx, pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor) -> torch.Tensor:
        b, v, _ = pos.shape
        _, h, w, _ = rast.shape
        out = torch.empty_like(rast)
        device, stream = _native.device_args(pos)
        _native.native().raster_resolve(
            b, v, tri.shape[0], h, w, _native.data_ptr(_FN, "pos_clip", pos),
            _native.data_ptr(_FN, "tri", tri),
            _native.data_ptr(_FN, "rast", rast), _native.data_ptr(_FN, "out", out),
            _native.dtype_name(pos.dtype), device, stream,
        )
        ctx.save_for_backward(pos, tri, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: torch.Tensor):
        pos, tri, out = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        return resolve_backward(pos, tri, out, d_out), None, None


def resolve(pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor) -> torch.Tensor:
    """Barycentrics and depth of ``rast``'s triangles recomputed from ``pos [B, V, 4]``.

    Used by :func:`csdkit.ops.interpolate` (``pos_clip=``) so that position gradients flow even
    when ``rast`` itself is detached or came from another rasterizer. Inputs are validated by the
    caller. Returns ``[B, H, W, 4]`` like :func:`rasterize`, differentiable w.r.t. ``pos``.
    """
    if not _kernels(pos.device):
        return resolve_reference(pos, tri, rast[..., 3].detach().round().long())
    return _Resolve.apply(pos.contiguous(), tri.contiguous(), rast.detach().contiguous())


def rasterize(pos_clip: torch.Tensor, tri: torch.Tensor, resolution: int | tuple[int, int]) -> torch.Tensor:
    """Rasterize triangles: for every pixel, the nearest triangle and its barycentrics.

    Same conventions as ``nvdiffrast.torch.rasterize`` (a drop-in for its first output):
    pixel ``(py, px)`` samples NDC ``((2 px + 1) / W - 1, (2 py + 1) / H - 1)``, so **row 0 is
    NDC y = -1** (the bottom of an OpenGL image; flip rows for a top-down picture). Clip space is
    OpenGL's: a fragment is kept when ``-1 <= z/w <= 1`` (near/far clipping) and the smallest
    ``z/w`` wins (ties: the lower triangle index). Triangles crossing the camera plane (``w <= 0``)
    are clipped in homogeneous space. There is no back-face culling. The fill rule is exact
    (fixed-point edge functions with a tie rule), so a closed mesh has no cracks and no pixel is
    covered twice by triangles that share an edge.

    Args:
        pos_clip: ``[B, V, 4]`` (or ``[V, 4]`` for one image) float32 or float64 clip-space vertex
            positions ``(x, y, z, w)``, e.g. ``cameras.proj @ cameras.w2c @ [p, 1]``. CPU or CUDA.
        tri: ``[T, 3]`` int32 vertex indices, on ``pos_clip``'s device, shared by all images.
        resolution: ``(H, W)`` or an int for a square image, each in ``[1, 16384]``.

    Returns:
        ``rast [B, H, W, 4]`` of ``pos_clip``'s dtype and device with channels
        ``(u, v, z/w, triangle_id + 1)``; all four are 0 where no triangle is hit. ``u`` is the
        perspective-correct barycentric weight of the triangle's vertex 0, ``v`` of vertex 1 and
        ``1 - u - v`` of vertex 2. The last channel holds integers (exact up to 2**24 triangles in
        float32).

    Differentiable w.r.t. ``pos_clip`` through ``u``, ``v`` and ``z/w`` (inside triangles;
    visibility changes at silhouettes have no gradient). Feed ``rast`` to
    :func:`csdkit.ops.interpolate` to get position gradients through interpolated attributes.
    """
    pos = as_batched_positions(_FN, pos_clip)
    height, width = check_resolution(_FN, resolution)
    check_tri(_FN, tri, pos.shape[1], pos.device)
    if tri.shape[0] >= 1 << 24 and pos.dtype == torch.float32:
        raise ValueError(f"{_FN}(): at most 2**24 - 1 triangles fit the float32 id channel, got "
                         f"{tri.shape[0]} (pass float64 positions)")
    if not _kernels(pos.device):
        return rasterize_reference(pos, tri, (height, width))
    return _Rasterize.apply(pos.contiguous(), tri.contiguous(), height, width)
