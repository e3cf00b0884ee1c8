"""Isosurface extraction from a scalar grid (marching tetrahedra), for inspecting density fields.

Each grid cell is split into six tetrahedra around its main diagonal (the Kuhn/Freudenthal
split, the same in every cell, so neighbouring cells agree on their shared face diagonals and the
mesh has no cracks). Each tetrahedron whose corners straddle the threshold contributes one
triangle (one corner on the other side) or two (two and two). Vertices live on grid edges, placed
by linear interpolation and shared between all triangles that use the edge, so a closed level set
gives a closed, consistently oriented mesh. The cells that straddle the level are found with torch;
their tets go through :func:`csdkit.ops.marching_tetrahedra` (the compiled kernel; about twice as
fast as the former all-torch path, see ``benchmarks/suites/marching_tets.py``). Runs where the grid is.

Compared with marching cubes it makes about twice as many triangles, needs no 256-case table and
has no ambiguous cases.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import _native
from ..ops import marching_tetrahedra as tet_marching_tetrahedra
from ..ops._checks import check_float, check_tensor
from ..ops.reference import marching_tetrahedra_reference
from .tet_grid import KUHN_TETS

_FN = "marching_tetrahedra"



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
    tets = corner_ids[:, torch.tensor(KUHN_TETS, device=dev)].reshape(-1, 4)  # [C * 6, 4], positive
    lins = [torch.linspace(lo, hi, n, dtype=dt, device=dev) for (lo, hi), n in zip(axes, (nx, ny, nz), strict=True)]
    positions = torch.stack(torch.meshgrid(*lins, indexing="ij"), dim=-1).reshape(-1, 3)
    sdf = threshold - flat  # < 0 inside (values > threshold)
    if _native.available() and (dev.type == "cpu" or _native.native().compiled_with_cuda()):
        return tet_marching_tetrahedra(positions, tets, sdf)
    return marching_tetrahedra_reference(positions, tets, sdf)
