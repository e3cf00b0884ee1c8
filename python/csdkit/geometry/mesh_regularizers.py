"""Mesh regularizers for mesh optimization (DMTet refinement) and connected components.

All functions take a :class:`~csdkit.geometry.mesh.Mesh` (or its ``vertices``/``faces``), are
vectorized torch, differentiable w.r.t. the vertices, and run where the mesh is.
"""

from __future__ import annotations

import torch

from .mesh import Mesh

__all__ = ["face_components", "keep_large_components", "laplacian_loss", "mesh_edges",
           "normal_consistency_loss"]


def mesh_edges(faces: torch.Tensor, n_vertices: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Undirected edges of a triangle mesh and, per edge, how many faces use it.

    Returns ``edges [E, 2]`` int64 (``a < b``, sorted) and ``counts [E]`` int64.
    """
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    lo, hi = e.min(1).values, e.max(1).values
    keys, counts = torch.unique(lo * n_vertices + hi, return_counts=True)
    return torch.stack([keys // n_vertices, keys % n_vertices], 1), counts


def normal_consistency_loss(mesh: Mesh) -> torch.Tensor:
    """Mean of ``1 - cos(n_f, n_g)`` over the pairs of faces ``(f, g)`` sharing an edge.

    Returns a scalar (0 for a mesh without shared edges), differentiable w.r.t. ``mesh.vertices``.
    """
    faces, n_v = mesh.faces, mesh.num_vertices
    normals = torch.nn.functional.normalize(mesh.face_normals(unit=False), dim=-1, eps=1e-20)
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = e.min(1).values * n_v + e.max(1).values
    face_of = torch.arange(faces.shape[0], device=faces.device).repeat(3)
    key, order = torch.sort(key)
    face_of = face_of[order]
    same = key[1:] == key[:-1]  # consecutive half-edges of one edge (two on a manifold edge)
    if not bool(same.any()):
        return mesh.vertices.sum() * 0.0
    f, g = face_of[:-1][same], face_of[1:][same]
    return (1.0 - (normals[f] * normals[g]).sum(-1)).mean()


def laplacian_loss(mesh: Mesh) -> torch.Tensor:
    """Mean squared uniform Laplacian ``|mean(neighbours of v) - v|^2`` over the used vertices.

    Returns a scalar, differentiable w.r.t. ``mesh.vertices``.
    """
    v = mesh.vertices
    edges, _ = mesh_edges(mesh.faces, mesh.num_vertices)
    a, b = edges[:, 0], edges[:, 1]
    summed = torch.zeros_like(v).index_add(0, a, v[b]).index_add(0, b, v[a])
    degree = torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)
    one = torch.ones_like(a, dtype=v.dtype)
    degree = degree.index_add(0, a, one).index_add(0, b, one)
    used = degree > 0
    lap = summed[used] / degree[used, None] - v[used]
    return lap.square().sum(-1).mean() if lap.shape[0] else v.sum() * 0.0


def face_components(faces: torch.Tensor, n_vertices: int) -> torch.Tensor:
    """Connected component of each face (faces sharing a vertex are connected).

    Returns ``[F]`` int64 labels in ``[0, C)``, numbered by their smallest face index.
    """
    dev = faces.device
    if faces.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=dev)
    label = torch.arange(n_vertices, device=dev)
    flat = faces.reshape(-1)
    while True:  # min-label propagation over faces, with pointer jumping
        m = label[faces].min(1).values.repeat_interleave(3)
        new = label.scatter_reduce(0, flat, m, reduce="amin")
        new = new.scatter_reduce(0, label, new, reduce="amin")  # merge whole classes through their root
        new = new[new]
        if torch.equal(new, label):
            break
        label = new
    root = label[faces[:, 0]]
    # renumber by first face
    uniq, inverse = torch.unique(root, return_inverse=True)
    first = torch.full((uniq.numel(),), faces.shape[0], dtype=torch.int64, device=dev)
    first = first.scatter_reduce(0, inverse, torch.arange(faces.shape[0], device=dev), reduce="amin")
    rank = torch.empty_like(first)
    rank[torch.argsort(first)] = torch.arange(first.numel(), device=dev)
    return rank[inverse]


def keep_large_components(mesh: Mesh, min_fraction: float) -> Mesh:
    """Drop the connected components with fewer than ``min_fraction`` x the faces of the largest one.

    Unused vertices are removed; per-vertex attributes (colours) follow. UV/texture are dropped.
    """
    comp = face_components(mesh.faces, mesh.num_vertices)
    sizes = torch.bincount(comp)
    keep_comp = sizes >= min_fraction * sizes.max()
    keep = keep_comp[comp]
    faces = mesh.faces[keep]
    used = torch.zeros(mesh.num_vertices, dtype=torch.bool, device=faces.device)
    used[faces.reshape(-1)] = True
    remap = torch.cumsum(used.long(), 0) - 1
    colors = None if mesh.vertex_colors is None else mesh.vertex_colors[used]
    return Mesh(mesh.vertices[used], remap[faces], vertex_colors=colors)
