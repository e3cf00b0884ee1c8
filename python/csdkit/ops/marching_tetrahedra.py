"""Marching tetrahedra on a tetrahedral mesh: an indexed, watertight, differentiable isosurface."""

from __future__ import annotations

import warnings

import torch

from .. import _native
from ._checks import check_tensor, describe
from .reference.marching_tetrahedra import marching_tetrahedra_reference

__all__ = ["marching_tetrahedra"]

_FN = "marching_tetrahedra"
_FLOATS = (torch.float32, torch.float64)
_INTS = (torch.int32, torch.int64)
_INT64_MAX = 2**63 - 1


def marching_tetrahedra(
    vertices: torch.Tensor, tets: torch.Tensor, sdf: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triangle mesh of the zero level set of ``sdf`` over the tetrahedral mesh ``(vertices, tets)``.

    A vertex is inside when ``sdf < 0``. Every tet whose corners straddle zero gives one triangle
    (one or three corners inside) or two (two and two) from the 16-case table; each crossing edge
    ``(a, b)`` gives one output vertex at the zero of the linear interpolation,
    ``x_a + w (x_b - x_a)`` with ``w = sdf_a / (sdf_a - sdf_b)``, shared by all triangles on that
    edge. A closed level set therefore gives a closed (watertight) indexed mesh, counter-clockwise
    seen from outside (outward normals) when the tets are positively oriented
    (``det[x1 - x0, x2 - x0, x3 - x0] > 0``, as :func:`csdkit.geometry.tet_grid` makes them).
    The exact rule, vertex and face order included, is
    :func:`csdkit.ops.reference.marching_tetrahedra_reference`.

    Args:
        vertices: ``[V, 3]`` float32 or float64 positions, CPU or CUDA.
        tets: ``[T, 4]`` int32 or int64 vertex ids in ``[0, V)``, same device.
        sdf: ``[V]`` signed distance (or any level function), same dtype and device as ``vertices``.

    Returns:
        ``verts [N, 3]`` (dtype and device of ``vertices``; differentiable w.r.t. ``vertices`` and
        ``sdf``) and ``faces [M, 3]`` int64 on the same device. Both are empty when nothing crosses.

    Raises:
        TypeError: wrong dtypes. ValueError: wrong shapes, devices, NaN/Inf sdf, ids out of range.
    """
    dims: dict[str, int] = {}
    check_tensor(_FN, "vertices", vertices, dtype=_FLOATS, shape=("V", 3), dims=dims)
    check_tensor(_FN, "tets", tets, dtype=_INTS, shape=(None, 4), device=vertices.device)
    check_tensor(_FN, "sdf", sdf, dtype=vertices.dtype, shape=("V",), device=vertices.device, dims=dims)
    n_vertices = vertices.shape[0]
    if n_vertices >= 2**31:
        raise ValueError(f"{_FN}(): at most 2^31 - 1 vertices are supported, got {n_vertices}")
    if not bool(torch.isfinite(sdf).all()):
        raise ValueError(f"{_FN}(): sdf holds NaN or Inf values ({describe(sdf)})")
    native = _native.use_native(vertices.device) and _kernel_built()
    if not native or vertices.device.type != "cpu":  # the CPU kernel checks the ids itself
        _check_ids(tets, n_vertices)
    if not native:
        return marching_tetrahedra_reference(vertices, tets, sdf)
    try:
        out_vertices, edges, faces = _topology_native(vertices.detach().contiguous(), tets.contiguous(),
                                                      sdf.detach().contiguous())
    except ValueError:
        _check_ids(tets, n_vertices)
        raise
    if vertices.requires_grad or sdf.requires_grad:
        out_vertices = _EdgeInterpolation.apply(vertices, sdf, edges, out_vertices)
    return out_vertices, faces


_warned_stale = False


def _kernel_built() -> bool:
    """False (with a one-time warning) when csdkit._C predates the marching-tets kernel (a stale build)."""
    global _warned_stale
    if hasattr(_native.native(), "marching_tets_pass"):
        return True
    if not _warned_stale:
        warnings.warn("csdkit._C was built before the marching-tetrahedra kernel existed; using the pure-PyTorch "
                      "reference (rebuild with `make build` for the compiled kernel)", RuntimeWarning, stacklevel=3)
        _warned_stale = True
    return False


def _check_ids(tets: torch.Tensor, n_vertices: int) -> None:
    if tets.shape[0] > 0:
        lo, hi = (int(x) for x in torch.aminmax(tets))
        if lo < 0 or hi >= n_vertices:
            raise ValueError(f"{_FN}(): tets must hold vertex ids in [0, {n_vertices}), got ids in "
                             f"[{lo}, {hi}] ({describe(tets)})")


def _topology_native(vertices: torch.Tensor, tets: torch.Tensor, sdf: torch.Tensor):
    """Runs the four kernel passes; returns ``(verts [N, 3], edges [N, 2] int64, faces [M, 3] int64)``."""
    mod = _native.native()
    dev, stream = _native.device_args(vertices)
    device = vertices.device
    dtype, index_dtype = _native.dtype_name(vertices.dtype), _native.dtype_name(tets.dtype)
    b = mod.MarchingTetsBuffers()
    b.n_vertices, b.n_tets = vertices.shape[0], tets.shape[0]
    b.vertices = _native.data_ptr(_FN, "vertices", vertices)
    b.tets = _native.data_ptr(_FN, "tets", tets)
    b.sdf = _native.data_ptr(_FN, "sdf", sdf)

    def run(name: str) -> None:
        mod.marching_tets_pass(name, b, dtype, index_dtype, dev, stream)

    tet_triangles = torch.zeros(tets.shape[0], dtype=torch.int64, device=device)
    b.tet_triangles = _native.data_ptr(_FN, "tet_triangles", tet_triangles)
    run("classify")
    active = tet_triangles.nonzero().squeeze(1).contiguous()
    n_active = active.numel()
    if n_active == 0:
        empty_v = vertices.new_zeros(0, 3)
        return empty_v, torch.zeros(0, 2, dtype=torch.int64, device=device), \
            torch.zeros(0, 3, dtype=torch.int64, device=device)
    counts = tet_triangles[active]
    ends = torch.cumsum(counts, 0)
    n_faces = int(ends[-1])
    tri_offset = (ends - counts).contiguous()
    bits = mod.marching_tets_table_bits(n_active)
    table_keys = torch.full((1 << bits,), -1, dtype=torch.int64, device=device)
    table_owner = torch.full((1 << bits,), _INT64_MAX, dtype=torch.int64, device=device)
    slot_entry = torch.empty(6 * n_active, dtype=torch.int64, device=device)
    slot_owner = torch.empty(6 * n_active, dtype=torch.int64, device=device)
    b.n_active, b.table_bits = n_active, bits
    b.active = _native.data_ptr(_FN, "active", active)
    b.tri_offset = _native.data_ptr(_FN, "tri_offset", tri_offset)
    b.table_keys = _native.data_ptr(_FN, "table_keys", table_keys)
    b.table_owner = _native.data_ptr(_FN, "table_owner", table_owner)
    b.slot_entry = _native.data_ptr(_FN, "slot_entry", slot_entry)
    b.slot_owner = _native.data_ptr(_FN, "slot_owner", slot_owner)
    run("insert_edges")
    run("mark_owners")
    owner_rank = torch.cumsum(slot_owner, 0)
    n_out = int(owner_rank[-1])
    out_vertices = vertices.new_empty(n_out, 3)
    out_edges = torch.empty(n_out, 2, dtype=torch.int64, device=device)
    faces = torch.empty(n_faces, 3, dtype=torch.int64, device=device)
    b.owner_rank = _native.data_ptr(_FN, "owner_rank", owner_rank)
    b.n_out_vertices = n_out
    b.out_vertices = _native.data_ptr(_FN, "out_vertices", out_vertices)
    b.out_edges = _native.data_ptr(_FN, "out_edges", out_edges)
    b.out_faces = _native.data_ptr(_FN, "out_faces", faces)
    run("emit")
    return out_vertices, out_edges, faces


class _EdgeInterpolation(torch.autograd.Function):
    """``verts = x_a + w (x_b - x_a)``, ``w = s_a / (s_a - s_b)`` on the kernel's crossing edges.

    The forward values come from the kernel; the backward is torch ops on the saved edge endpoints
    (itself differentiable, so double backward works).
    """

    @staticmethod
    def forward(ctx, vertices, sdf, edges, out_vertices):  # noqa: D102
        ctx.save_for_backward(vertices, sdf, edges)
        return out_vertices.clone()

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        vertices, sdf, edges = ctx.saved_tensors
        a, b = edges[:, 0], edges[:, 1]
        sa, sb = sdf[a], sdf[b]
        d = sa - sb
        w = sa / d
        grad_vertices = grad_sdf = None
        if ctx.needs_input_grad[0]:
            grad_vertices = torch.zeros_like(vertices).index_add(0, a, grad * (1 - w)[:, None]) \
                .index_add(0, b, grad * w[:, None])
        if ctx.needs_input_grad[1]:
            gw = (grad * (vertices[b] - vertices[a])).sum(-1)
            grad_sdf = torch.zeros_like(sdf).index_add(0, a, gw * (-sb) / (d * d)) \
                .index_add(0, b, gw * sa / (d * d))
        return grad_vertices, grad_sdf, None, None
