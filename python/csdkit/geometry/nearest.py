"""Nearest-vertex lookups between point sets (brute force, chunked so memory stays bounded)."""

from __future__ import annotations

import torch

from .mesh import Mesh

__all__ = ["nearest_vertex", "nearest_vertex_colors"]

_FN = "nearest_vertex"


@torch.no_grad()
def nearest_vertex(points: torch.Tensor, vertices: torch.Tensor, *, max_elements: int = 2**24) -> torch.Tensor:
    """Index of the nearest of ``vertices`` (Euclidean) for every point.

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
    out = torch.empty(query.shape[0], dtype=torch.int64, device=query.device)
    step = max(1, max_elements // src.shape[0])
    for start in range(0, query.shape[0], step):
        out[start:start + step] = torch.cdist(query[start:start + step], src).argmin(1)
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
