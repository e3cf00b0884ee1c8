"""Isosurface extraction from a scalar grid (marching tetrahedra), for inspecting density fields.

Each grid cell is split into six tetrahedra around its main diagonal (the Kuhn/Freudenthal
split, the same in every cell, so neighbouring cells agree on their shared face diagonals and the
mesh has no cracks). Each tetrahedron whose corners straddle the threshold contributes one
triangle (one corner on the other side) or two (two and two). Vertices live on grid edges, placed
by linear interpolation and shared between all triangles that use the edge, so a closed level set
gives a closed, consistently oriented mesh. Fully vectorized in PyTorch; runs where the grid is.

Compared with marching cubes it makes about twice as many triangles, needs no 256-case table and
has no ambiguous cases.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..ops._checks import check_float, check_tensor

_FN = "marching_tetrahedra"

# Cube corner c sits at offset (c & 1, (c >> 1) & 1, (c >> 2) & 1). Six tetrahedra 0 -> a -> b -> 7
# along the monotone paths from corner 0 to corner 7.
_TETS = ((0, 1, 3, 7), (0, 1, 5, 7), (0, 2, 3, 7), (0, 2, 6, 7), (0, 4, 5, 7), (0, 4, 6, 7))


def _bounds(bounds, fn: str) -> list[tuple[float, float]]:
    if isinstance(bounds, (int, float)) or len(bounds) != 3 or isinstance(bounds[0], (int, float)):
        lo_hi = (-float(bounds), float(bounds)) if isinstance(bounds, (int, float)) else tuple(bounds)
        per_axis = [lo_hi] * 3
    else:
        per_axis = [tuple(b) for b in bounds]
    for lo_hi in per_axis:
        if len(lo_hi) != 2 or not float(lo_hi[0]) < float(lo_hi[1]):
            raise ValueError(f"{fn}(): bounds must be (low, high) with low < high, or three such pairs, "
                             f"got {bounds!r}")
    return [(float(a), float(b)) for a, b in per_axis]


def marching_tetrahedra(
    values: torch.Tensor,
    threshold: float,
    bounds: float | Sequence[float] | Sequence[Sequence[float]] = (-1.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triangle mesh of the level set ``values = threshold``.

    Args:
        values: ``[X, Y, Z]`` float32/float64 samples at the vertices of a regular grid (CPU or
            CUDA); ``values[i, j, k]`` sits at ``(x_i, y_j, z_k)``, ``x_i = lo + (hi - lo) i / (X - 1)``.
        threshold: the level. Points with ``values > threshold`` are *inside*.
        bounds: the grid's extent: ``(lo, hi)`` for all axes, a number ``r`` for ``(-r, r)``, or
            three ``(lo, hi)`` pairs.

    Returns:
        ``vertices [V, 3]`` (dtype and device of ``values``) and ``faces [F, 3]`` int64, oriented
        counter-clockwise seen from outside (face normals point toward lower values). Both are
        empty when the level set does not cross the grid.
    """
    check_tensor(_FN, "values", values, dtype=(torch.float32, torch.float64), shape=(None, None, None))
    if min(values.shape) < 2:
        raise ValueError(f"{_FN}(): values must have at least 2 samples per axis, got shape "
                         f"{list(values.shape)}")
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{_FN}(): values contain NaN or Inf")
    threshold = check_float(_FN, "threshold", threshold)
    axes = _bounds(bounds, _FN)
    dev, dt = values.device, values.dtype
    nx, ny, nz = values.shape
    flat = values.reshape(-1)
    inside = flat > threshold

    # Cells with corners on both sides.
    ins = inside.reshape(nx, ny, nz)
    corner_views = [ins[(c & 1):nx - 1 + (c & 1), ((c >> 1) & 1):ny - 1 + ((c >> 1) & 1),
                        ((c >> 2) & 1):nz - 1 + ((c >> 2) & 1)] for c in range(8)]
    count = torch.stack(corner_views).sum(0)
    cells = ((count > 0) & (count < 8)).nonzero()  # [C, 3]
    empty = (values.new_zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64, device=dev))
    if cells.shape[0] == 0:
        return empty

    stride = torch.tensor([ny * nz, nz, 1], device=dev)
    offs = torch.tensor([[c & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)], device=dev)
    corner_ids = ((cells[:, None, :] + offs[None]) * stride).sum(-1)  # [C, 8] flat vertex ids
    tets = corner_ids[:, torch.tensor(_TETS, device=dev)].reshape(-1, 4)  # [C * 6, 4]
    tin = inside[tets]
    k = tin.sum(1)
    keep = (k > 0) & (k < 4)
    tets, tin, k = tets[keep], tin[keep], k[keep]
    # Inside corners first (stable, so each tetrahedron keeps a definite corner order).
    order = torch.argsort((~tin).to(torch.int8), dim=1, stable=True)
    tets = torch.gather(tets, 1, order)

    # Edges (pairs of sorted corner slots) of the triangles of each case.
    tri1 = torch.tensor([[[0, 1], [0, 2], [0, 3]]], device=dev)            # one inside corner
    tri3 = torch.tensor([[[0, 3], [1, 3], [2, 3]]], device=dev)            # one outside corner
    quad = torch.tensor([[[0, 2], [0, 3], [1, 3]], [[0, 2], [1, 3], [1, 2]]], device=dev)  # two and two
    tri_edges, tri_tet = [], []
    for case, table in ((1, tri1), (3, tri3), (2, quad)):
        sel = (k == case).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        tri_edges.append(tets[sel][:, table])  # [S, P, 3, 2]
        tri_tet.append(sel.repeat_interleave(table.shape[0]))
    edges = torch.cat([e.reshape(-1, 3, 2) for e in tri_edges])  # [T, 3, 2] flat vertex ids
    tri_tet = torch.cat(tri_tet)

    # One vertex per distinct grid edge.
    a, b = edges[..., 0], edges[..., 1]
    lo_id, hi_id = torch.minimum(a, b), torch.maximum(a, b)
    key = lo_id * flat.numel() + hi_id
    uniq, inverse = torch.unique(key.reshape(-1), return_inverse=True)
    va, vb = uniq // flat.numel(), uniq % flat.numel()
    fa, fb = flat[va], flat[vb]
    t = ((threshold - fa) / (fb - fa)).clamp(0.0, 1.0)

    def position(ids: torch.Tensor) -> torch.Tensor:
        ijk = torch.stack([ids // (ny * nz), (ids // nz) % ny, ids % nz], dim=-1).to(dt)
        size = torch.tensor([nx - 1, ny - 1, nz - 1], dtype=dt, device=dev)
        lo = torch.tensor([ax[0] for ax in axes], dtype=dt, device=dev)
        hi = torch.tensor([ax[1] for ax in axes], dtype=dt, device=dev)
        return lo + (hi - lo) * ijk / size

    pa, pb = position(va), position(vb)
    vertices = pa + t[:, None] * (pb - pa)
    faces = inverse.reshape(-1, 3)

    # Orient each triangle so its normal points from the inside corners to the outside ones.
    tet_pos = position(tets[tri_tet])  # [T, 4, 3]
    t_in = tin.gather(1, order)[tri_tet].to(dt)  # [T, 4], inside flags in sorted order
    c_in = (tet_pos * t_in[..., None]).sum(1) / t_in.sum(1, keepdim=True)
    c_out = (tet_pos * (1 - t_in)[..., None]).sum(1) / (1 - t_in).sum(1, keepdim=True)
    v = vertices[faces]
    normal = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
    flip = (normal * (c_out - c_in)).sum(-1) < 0
    faces = torch.where(flip[:, None], faces[:, [0, 2, 1]], faces)
    return vertices, faces
