"""Pure-PyTorch marching tetrahedra: the specification of :func:`csdkit.ops.marching_tetrahedra`.

The rule (the C++/CUDA kernels in ``cpp/include/csdkit/marching_tets.h`` follow it exactly):

* vertex ``v`` is *inside* when ``sdf[v] < 0``; tet ``(v0, v1, v2, v3)`` has case
  ``c = sum_i [sdf[v_i] < 0] << i``; cases 0 and 15 emit nothing.
* local edges ``e0..e5 = (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)``; :data:`TRI_TABLE` lists, per case,
  up to two triangles as triples of local edges (counter-clockwise seen from outside for a positively
  oriented tet, ``det[x1 - x0, x2 - x0, x3 - x0] > 0``).
* each crossing edge ``(a, b)``, ``a < b``, gives one vertex ``x[a] + w (x[b] - x[a])`` with
  ``w = sdf[a] / (sdf[a] - sdf[b])``, shared by every triangle that uses the edge.
* output vertices are numbered by first use: slots ``6 * i + e`` (``i`` the index among the active
  tets, in tet order; ``e`` the local edge); faces come in active-tet order, table order within.
"""

from __future__ import annotations

import torch

__all__ = ["EDGE_CORNERS", "NUM_TRIANGLES", "TRI_TABLE", "marching_tetrahedra_reference"]

#: Corners of the six local edges.
EDGE_CORNERS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))

#: Per case, two triangles of local edges (``-1`` = no triangle).
TRI_TABLE = (
    (-1, -1, -1, -1, -1, -1),  # 0: all outside
    (0, 1, 2, -1, -1, -1),     # 1: {0} inside
    (0, 4, 3, -1, -1, -1),     # 2: {1}
    (1, 2, 4, 1, 4, 3),        # 3: {0, 1}
    (1, 3, 5, -1, -1, -1),     # 4: {2}
    (0, 5, 2, 0, 3, 5),        # 5: {0, 2}
    (0, 4, 5, 0, 5, 1),        # 6: {1, 2}
    (2, 4, 5, -1, -1, -1),     # 7: {0, 1, 2}
    (2, 5, 4, -1, -1, -1),     # 8: {3}
    (0, 1, 5, 0, 5, 4),        # 9: {0, 3}
    (0, 5, 3, 0, 2, 5),        # 10: {1, 3}
    (1, 5, 3, -1, -1, -1),     # 11: {0, 1, 3}
    (1, 3, 4, 1, 4, 2),        # 12: {2, 3}
    (0, 3, 4, -1, -1, -1),     # 13: {0, 2, 3}
    (0, 2, 1, -1, -1, -1),     # 14: {1, 2, 3}
    (-1, -1, -1, -1, -1, -1),  # 15: all inside
)

#: Triangles per case.
NUM_TRIANGLES = tuple(sum(1 for j in range(2) if row[3 * j] >= 0) for row in TRI_TABLE)


def marching_tetrahedra_reference(
    vertices: torch.Tensor, tets: torch.Tensor, sdf: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triangle mesh of the zero level set of ``sdf`` over a tetrahedral mesh (differentiable).

    Args:
        vertices: ``[V, 3]`` float32/float64 positions.
        tets: ``[T, 4]`` int32/int64 vertex ids (positively oriented for outward faces).
        sdf: ``[V]`` values (dtype of ``vertices``); ``< 0`` is inside.

    Returns:
        ``verts [N, 3]`` (differentiable w.r.t. ``vertices`` and ``sdf`` by autograd) and
        ``faces [M, 3]`` int64, on the device of ``vertices``. Inputs are not validated.
    """
    dev = vertices.device
    n_vertices = vertices.shape[0]
    tets = tets.long()
    inside = sdf < 0
    bits = torch.tensor([1, 2, 4, 8], device=dev)
    case = (inside[tets].long() * bits).sum(1)
    n_tri = torch.tensor(NUM_TRIANGLES, device=dev)[case]
    active = (n_tri > 0).nonzero().squeeze(1)
    n_active = active.numel()
    if n_active == 0:
        return vertices.new_zeros(0, 3) + 0 * sdf.sum(), torch.zeros(0, 3, dtype=torch.int64, device=dev)
    at, ac = tets[active], case[active]
    ends = at[:, torch.tensor(EDGE_CORNERS, device=dev)]  # [A, 6, 2]
    lo, hi = ends.min(-1).values, ends.max(-1).values
    cross = inside[lo] != inside[hi]  # [A, 6]
    slots = torch.arange(6 * n_active, device=dev).reshape(n_active, 6)
    keys, cs = (lo * n_vertices + hi)[cross], slots[cross]
    uniq, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((uniq.numel(),), 6 * n_active, dtype=torch.int64, device=dev)
    first = first.scatter_reduce(0, inverse, cs, reduce="amin")
    order = torch.argsort(first)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=dev)
    slot_vertex = torch.full((6 * n_active,), -1, dtype=torch.int64, device=dev)
    slot_vertex[cs] = rank[inverse]

    edge_keys = uniq[order]
    a, b = edge_keys // n_vertices, edge_keys % n_vertices
    sa, sb = sdf[a], sdf[b]
    w = sa / (sa - sb)
    xa = vertices[a]
    verts = xa + w[:, None] * (vertices[b] - xa)

    table = torch.tensor(TRI_TABLE, device=dev)[ac].reshape(n_active, 2, 3)
    valid = torch.arange(2, device=dev)[None] < n_tri[active][:, None]  # [A, 2]
    faces = slot_vertex.reshape(n_active, 6).gather(1, table.clamp(min=0).reshape(n_active, 6))
    faces = faces.reshape(n_active, 2, 3)[valid]
    return verts, faces
