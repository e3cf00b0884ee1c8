"""Nearest-vertex lookups between point sets: exact, chunked so memory stays bounded, pruned when large.

Large lookups (a 49^3 lattice against 20000 surface samples, for a start shape's signed distance) are
pruned without changing the answer: a coarse pass against every ``k``-th vertex bounds each point's
nearest distance from above, the points are binned into cells, and each cell compares its points only
with the vertices that lie within that bound of the cell's box. On that lattice this is about 5x faster
than comparing every pair.
"""

from __future__ import annotations

import torch

from .mesh import Mesh

__all__ = ["nearest_vertex", "nearest_vertex_colors"]

_FN = "nearest_vertex"


@torch.no_grad()
def nearest_vertex(points: torch.Tensor, vertices: torch.Tensor, *, max_elements: int = 2**24) -> torch.Tensor:
    """Index of the nearest of ``vertices`` (Euclidean) for every point (exact; pruned when large).

    Args:
        points: ``[P, 3]`` float, any device.
        vertices: ``[N, 3]`` float, ``N >= 1`` (moved to ``points``' device).
        max_elements: at most this many distances are held at once (``P`` is cut into chunks of
            ``max(1, max_elements // N)`` points).

    Returns:
        ``[P]`` int64 on ``points``' device. No gradient flows through the lookup.
    """
    for name, t in (("points", points), ("vertices", vertices)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[1] != 3 or not t.is_floating_point():
            got = f"{t.dtype} {list(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{_FN}(): {name} must be a float tensor [*, 3], got {got}")
    if vertices.shape[0] == 0:
        raise ValueError(f"{_FN}(): vertices must hold at least one point, got [0, 3]")
    if isinstance(max_elements, bool) or not isinstance(max_elements, int) or max_elements < 1:
        raise ValueError(f"{_FN}(): max_elements must be an int >= 1, got {max_elements!r}")
    src = vertices.detach().to(points.device, torch.float32)
    query = points.detach().float()
    if query.shape[0] * src.shape[0] <= _PRUNE_ABOVE or query.shape[0] < 2 * _POINTS_PER_CELL:
        return _nearest_all_pairs(query, src, max_elements)
    return _nearest_pruned(query, src, max_elements)


_PRUNE_ABOVE = 2**26      # point-vertex pairs above which the pruned search pays off
_POINTS_PER_CELL = 256    # points per cell of the pruned search, on average
_COARSE_VERTICES = 1024   # vertices of its coarse bounding pass


def _nearest_all_pairs(query: torch.Tensor, src: torch.Tensor, max_elements: int) -> torch.Tensor:
    """Every pair, ``max(1, max_elements // N)`` points at a time."""
    out = torch.empty(query.shape[0], dtype=torch.int64, device=query.device)
    step = max(1, max_elements // src.shape[0])
    for start in range(0, query.shape[0], step):
        out[start:start + step] = torch.cdist(query[start:start + step], src).argmin(1)
    return out


def _nearest_pruned(query: torch.Tensor, src: torch.Tensor, max_elements: int) -> torch.Tensor:
    """The same answer as :func:`_nearest_all_pairs`, comparing each cell of points with nearby vertices only.

    ``bound [P]``: the distance to the nearest of every ``k``-th vertex, at least the true nearest distance.
    A vertex farther than a cell's largest bound from the cell's box is nobody's nearest in that cell.
    """
    coarse = src[::max(1, src.shape[0] // _COARSE_VERTICES)]
    bound = torch.cdist(query, coarse).min(1).values if query.shape[0] * coarse.shape[0] <= max_elements else \
        (query - coarse[_nearest_all_pairs(query, coarse, max_elements)]).norm(dim=1)
    cells = max(1, min(16, round((query.shape[0] / _POINTS_PER_CELL) ** (1 / 3))))
    lo, hi = query.min(0).values, query.max(0).values
    ijk = ((query - lo) / (hi - lo).clamp_min(1e-12) * cells).long().clamp(0, cells - 1)
    key = (ijk[:, 0] * cells + ijk[:, 1]) * cells + ijk[:, 2]
    order = torch.argsort(key)
    out = torch.empty(query.shape[0], dtype=torch.int64, device=query.device)
    start = 0
    for count in torch.bincount(key, minlength=cells**3).tolist():
        if count == 0:
            continue
        idx = order[start:start + count]
        start += count
        pts = query[idx]
        box_lo, box_hi = pts.min(0).values, pts.max(0).values
        gap = ((box_lo - src).clamp_min(0) + (src - box_hi).clamp_min(0)).norm(dim=1)  # vertex to the cell's box
        near = torch.nonzero(gap <= bound[idx].max() * (1 + 1e-4) + 1e-4).squeeze(1)  # margin: float32 cdist
        out[idx] = near[_nearest_all_pairs(pts, src[near], max_elements)]
    return out


@torch.no_grad()
def nearest_vertex_colors(points: torch.Tensor, mesh: Mesh, *, max_elements: int = 2**24) -> torch.Tensor:
    """The vertex colour of ``mesh``'s vertex nearest to each point.

    Args:
        points: ``[P, 3]`` float, in ``mesh``'s coordinates.
        mesh: a :class:`~csdkit.Mesh` with ``vertex_colors [N, 3]``.
        max_elements: bound on the distances held at once (see :func:`nearest_vertex`).

    Returns:
        ``[P, 3]`` float32 on ``points``' device (no gradient).

    Raises:
        ValueError: ``mesh`` has no vertex colours, or bad shapes.
    """
    if mesh.vertex_colors is None:
        raise ValueError("nearest_vertex_colors(): mesh must have vertex_colors [N, 3], got None")
    idx = nearest_vertex(points, mesh.vertices, max_elements=max_elements)
    return mesh.vertex_colors.detach().to(idx.device, torch.float32)[idx]
