"""Analytic antialiasing at silhouette edges (nvdiffrast's ``antialias``): op and autograd wiring.

Rasterized images are step functions of the vertex positions: a pixel is either covered or not, so
silhouettes give no gradient. :func:`antialias` blends each pixel pair that straddles a silhouette
edge by how far the edge lies from the pixel centres, which smooths the edge and makes the image
differentiable w.r.t. the positions of the silhouette's vertices. The exact rule is in
``cpp/include/csdkit/raster_antialias.h`` and :mod:`csdkit.ops.reference.antialias`.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .. import _native
from ._checks import check_tensor, describe
from .rasterize import _kernels, as_batched_positions, check_tri
from .reference.antialias import antialias_reference, antialias_topology_reference

_FN = "antialias"
_FLOATS = (torch.float32, torch.float64)

__all__ = ["antialias", "antialias_topology"]


def antialias_topology(tri: torch.Tensor) -> torch.Tensor:
    """Edge adjacency of a triangle mesh, for :func:`antialias` (compute it once per mesh).

    Args:
        tri: ``[T, 3]`` int32 vertex indices (any device).

    Returns:
        ``[T, 3]`` int32 on ``tri``'s device: entry ``[t, k]`` is the triangle across the edge
        ``(tri[t, k], tri[t, (k + 1) % 3])``, or -1 for a boundary edge or an edge shared by more than two
        triangles (both always count as silhouettes).
    """
    check_tensor("antialias_topology", "tri", tri, dtype=torch.int32, shape=(None, 3))
    return antialias_topology_reference(tri)


class _Antialias(torch.autograd.Function):
    @staticmethod
    def forward(ctx, color, rast, pos, tri, topology):
        b, h, w, c = color.shape
        out = torch.empty_like(color)
        weight = color.new_empty(b, h, w)
        device, stream = _native.device_args(color)
        _native.native().raster_antialias_forward(
            b, pos.shape[0], pos.shape[1], c, tri.shape[0], h, w, _native.data_ptr(_FN, "color", color),
            _native.data_ptr(_FN, "rast", rast), _native.data_ptr(_FN, "pos_clip", pos),
            _native.data_ptr(_FN, "tri", tri), _native.data_ptr(_FN, "topology", topology),
            _native.data_ptr(_FN, "out", out), _native.data_ptr(_FN, "weight", weight),
            _native.dtype_name(color.dtype), device, stream,
        )
        ctx.save_for_backward(color, rast, pos, tri, topology, out, weight)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out):
        color, rast, pos, tri, topology, out, weight = ctx.saved_tensors
        need_color, need_pos = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        if not (need_color or need_pos):
            return None, None, None, None, None
        b, h, w, c = color.shape
        d_out = d_out.contiguous()
        d_color = torch.empty_like(color) if need_color else None
        d_pos = torch.zeros_like(pos) if need_pos else None
        device, stream = _native.device_args(color)
        _native.native().raster_antialias_backward(
            b, pos.shape[0], pos.shape[1], c, tri.shape[0], h, w, _native.data_ptr(_FN, "color", color),
            _native.data_ptr(_FN, "rast", rast), _native.data_ptr(_FN, "pos_clip", pos),
            _native.data_ptr(_FN, "tri", tri), _native.data_ptr(_FN, "topology", topology),
            _native.data_ptr(_FN, "out", out), _native.data_ptr(_FN, "weight", weight),
            _native.data_ptr(_FN, "d_out", d_out), _native.data_ptr(_FN, "d_color", d_color),
            _native.data_ptr(_FN, "d_pos", d_pos), _native.dtype_name(color.dtype), device, stream,
        )
        return d_color, None, d_pos, None, None


def _check_topology(topology, tri: torch.Tensor) -> torch.Tensor:
    check_tensor(_FN, "topology", topology, dtype=torch.int32, shape=(tri.shape[0], 3), device=tri.device)
    if topology.numel() > 0:
        lo, hi = (int(v) for v in torch.aminmax(topology))
        if lo < -1 or hi >= tri.shape[0]:
            raise ValueError(f"{_FN}(): topology entries must be -1 or triangle indices in [0, {tri.shape[0] - 1}], "
                             f"got values in [{lo}, {hi}]; build it with csdkit.ops.antialias_topology(tri)")
    return topology


def antialias(color: torch.Tensor, rast: torch.Tensor, pos_clip: torch.Tensor, tri: torch.Tensor, *,
              topology: torch.Tensor | None = None) -> torch.Tensor:
    """Antialias a rendered image at the silhouette edges of the mesh it was rasterized from.

    Every pair of horizontally or vertically adjacent pixels with different triangle ids whose
    segment crosses a silhouette edge of the front pixel's triangle (a boundary edge, or one whose
    neighbour faces the other way on screen) is blended by the edge's distance from the pixel centres,
    as if each pixel were a unit box: a straight edge then gives each straddling pixel exactly its
    covered fraction along the pair's axis. When the blends landing on one pixel (up to four, at thin
    gaps and slivers) add up to more than 1 they are divided by their total, so every output pixel is a
    convex combination of input pixels. Pixels away from silhouettes are returned unchanged. The same
    idea as ``nvdiffrast.torch.antialias`` (topology from :func:`antialias_topology`).

    Args:
        color: ``[B, H, W, C]`` float32 / float64 image to antialias, usually the shaded colour composited
            over the background (so edges blend into it), rows as ``rast``'s.
        rast: ``[B, H, W, 4]`` output of :func:`csdkit.ops.rasterize` (or nvdiffrast's) for
            ``pos_clip`` and ``tri``; same dtype and device as ``color``.
        pos_clip: ``[B, V, 4]`` or ``[V, 4]`` clip-space positions ``rast`` was made with.
        tri: ``[T, 3]`` int32 vertex indices, same device.
        topology: ``[T, 3]`` int32 edge adjacency from :func:`antialias_topology`; None computes it
            (pass it in when the same mesh is rendered many times).

    Returns:
        ``[B, H, W, C]`` in ``color``'s dtype and device, differentiable w.r.t. ``color`` and
        ``pos_clip`` (``rast`` gets no gradient).
    """
    check_tensor(_FN, "color", color, dtype=_FLOATS, shape=(None, None, None, None))
    check_tensor(_FN, "rast", rast, dtype=color.dtype, shape=(color.shape[0], color.shape[1], color.shape[2], 4),
                 device=color.device)
    if color.shape[-1] < 1:
        raise ValueError(f"{_FN}(): color must have at least one channel, got {describe(color)}")
    pos = as_batched_positions(_FN, pos_clip)
    check_tensor(_FN, "pos_clip", pos, dtype=color.dtype, device=color.device)
    b = color.shape[0]
    if pos.shape[0] not in (1, b):
        raise ValueError(f"{_FN}(): pos_clip must be [B, V, 4] with B = {b} (color's batch) or 1, "
                         f"got {describe(pos_clip)}")
    check_tri(_FN, tri, pos.shape[1], color.device)
    topology = antialias_topology(tri) if topology is None else _check_topology(topology, tri)
    if not _kernels(color.device) or not hasattr(_native.native(), "raster_antialias_forward"):
        return antialias_reference(color, rast, pos, tri, topology)
    return _Antialias.apply(color.contiguous(), rast.detach().contiguous(), pos.contiguous(), tri.contiguous(),
                            topology.contiguous())
