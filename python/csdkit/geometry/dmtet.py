"""DMTet: a deformable tetrahedral grid with a per-vertex SDF, extracted by marching tetrahedra.

The grid is :func:`csdkit.geometry.tet_grid` (``R`` cubes per axis, six tets each) scaled to the box
``[-radius, radius]^3``. Each grid vertex has a learnable signed distance ``sdf`` (``< 0`` inside) and
a learnable offset ``deformation``; the vertex positions are

    vertices = grid * radius + (radius / resolution) * tanh(deformation)

so a vertex moves at most half a grid step (``2 radius / resolution``). :meth:`DMTet.extract` runs
:func:`csdkit.ops.marching_tetrahedra` on them: the mesh's vertices are differentiable w.r.t. both
``sdf`` and ``deformation``, so an image loss through a mesh renderer trains the surface.
"""

from __future__ import annotations

import logging
import math
import warnings

import torch
from torch import nn

from ..ops import marching_tetrahedra
from ..ops._checks import check_float, check_int
from .mesh import Mesh
from .mesh_regularizers import keep_large_components, laplacian_loss, normal_consistency_loss
from .tet_grid import tet_grid, tet_grid_edges

__all__ = ["DMTet", "otsu_threshold"]

logger = logging.getLogger("csdkit.dmtet")

_FN = "DMTet"


def otsu_threshold(values: torch.Tensor, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (maximum between-class variance of a ``bins``-bin histogram).

    Returns the upper edge of the best "low" class; raises ValueError when the values are constant.
    """
    v = values.detach().double().reshape(-1)
    lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        raise ValueError(f"otsu_threshold(): the values are constant ({lo}); no threshold separates them")
    hist = torch.histc(v, bins=bins, min=lo, max=hi)
    p = hist / hist.sum()
    centers = lo + (torch.arange(bins, dtype=torch.float64, device=v.device) + 0.5) * (hi - lo) / bins
    w0 = torch.cumsum(p, 0)
    mu = torch.cumsum(p * centers, 0)
    mu_t = mu[-1]
    between = (mu_t * w0 - mu) ** 2 / (w0 * (1 - w0)).clamp_min(1e-300)
    between[-1] = -1.0
    k = int(torch.argmax(between))
    return lo + (k + 1) * (hi - lo) / bins


def _axis_rays(lin: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor, axis: int,
               max_pairs: int = 2**22):
    """Crossings of the lattice lines parallel to ``axis`` with the triangles.

    The lines pass through ``(lin[i], lin[j])`` in the two other axes (cyclic order), nudged by a
    tiny irrational offset so that no line runs exactly through a mesh edge or vertex. Each face is
    tested only against the lines inside its bounding box, in groups of faces of at most about
    ``max_pairs`` line tests (bounded memory). Returns ``(column [H], coordinate [H],
    sign [H])`` per hit: column ``i * n + j``, the hit's coordinate along ``axis``, and ``+1`` where
    the face normal points along ``+axis`` (``-1`` against).
    """
    n = lin.shape[0]
    u, v = (axis + 1) % 3, (axis + 2) % 3
    tri = vertices[faces]  # [F, 3, 3]
    tu, tv, tw = tri[..., u], tri[..., v], tri[..., axis]
    lo, step = float(lin[0]), float(lin[1] - lin[0])
    off_u, off_v = 1.234567e-7 * step * math.pi, 1.234567e-7 * step * math.e

    def index_range(t, off):
        i0 = torch.ceil((t.min(1).values - off - lo) / step).clamp(0, n - 1).long()
        i1 = torch.floor((t.max(1).values - off - lo) / step).clamp(-1, n - 1).long()
        return i0, (i1 - i0 + 1).clamp_min(0)

    i0, ni = index_range(tu, off_u)
    j0, nj = index_range(tv, off_v)
    count = ni * nj
    ends = torch.cumsum(count, 0)
    total = int(ends[-1]) if ends.numel() else 0
    cols, ws, sgns = [], [], []
    lo_face = 0
    while lo_face < faces.shape[0] and total > 0:  # face groups of at most ~max_pairs line tests
        done = int(ends[lo_face - 1]) if lo_face > 0 else 0
        hi_face = int(torch.searchsorted(ends, done + max_pairs, right=True))
        hi_face = max(hi_face, lo_face + 1)
        sel = torch.arange(lo_face, hi_face, device=faces.device)
        c = count[sel]
        face = torch.repeat_interleave(sel, c)
        start = torch.cumsum(c, 0) - c
        local = torch.arange(face.shape[0], device=faces.device) - start[face - lo_face]
        ii, jj = i0[face] + local // nj[face], j0[face] + local % nj[face]
        pu, pv = lin[ii] + off_u, lin[jj] + off_v
        au, bu, cu = tu[face].unbind(1)
        av, bv, cv = tv[face].unbind(1)
        area = (bu - au) * (cv - av) - (bv - av) * (cu - au)
        e0 = (bu - au) * (pv - av) - (bv - av) * (pu - au)  # opposite c
        e1 = (cu - bu) * (pv - bv) - (cv - bv) * (pu - bu)  # opposite a
        e2 = (au - cu) * (pv - cv) - (av - cv) * (pu - cu)  # opposite b
        sgn = torch.sign(area)
        hit = (area != 0) & (e0 * sgn > 0) & (e1 * sgn > 0) & (e2 * sgn > 0)
        f, a_hit = face[hit], area[hit]
        ws.append((e1[hit] * tw[f, 0] + e2[hit] * tw[f, 1] + e0[hit] * tw[f, 2]) / a_hit)
        cols.append(ii[hit] * n + jj[hit])
        sgns.append(sgn[hit])
        lo_face = hi_face
    if not cols:
        empty = torch.zeros(0, dtype=lin.dtype, device=lin.device)
        return torch.zeros(0, dtype=torch.int64, device=lin.device), empty, empty
    return torch.cat(cols), torch.cat(ws), torch.cat(sgns)


def _ray_votes_and_distances(lin: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor):
    """Per lattice vertex ``(i, j, k)``: inside votes ``[n^3]`` (mean over 6 axis rays of the signed
    crossing count) and the distance along the axes to the nearest crossing (``inf`` without one)."""
    n = lin.shape[0]
    votes = torch.zeros(n, n, n, dtype=torch.float64, device=lin.device)
    dist = torch.full((n, n, n), math.inf, dtype=torch.float64, device=lin.device)
    for axis in range(3):
        col, w, sgn = _axis_rays(lin, vertices, faces, axis)
        idx = torch.searchsorted(lin, w.contiguous())  # number of lattice coordinates < w
        flat = col * (n + 1) + idx
        cnt = torch.zeros(n * n * (n + 1), dtype=torch.float64, device=lin.device).index_add_(0, flat, sgn)
        cum = torch.cumsum(cnt.reshape(n * n, n + 1), 1)[:, :n]  # sum over crossings below vertex k
        total = cum[:, -1:] + cnt.reshape(n * n, n + 1)[:, n:]
        vote = (total - cum) - cum  # (+axis ray: crossings above) + (-axis ray: minus crossings below)
        big = torch.full((n * n * (n + 1),), math.inf, dtype=torch.float64, device=lin.device)
        first_above = big.scatter_reduce(0, flat, w, reduce="amin").reshape(n * n, n + 1)[:, 1:]
        last_below = (-big).scatter_reduce(0, flat, w, reduce="amax").reshape(n * n, n + 1)[:, :n]
        d = torch.minimum(first_above - lin, lin - last_below)
        # column (a, b) of `axis` with position c along it -> lattice (i, j, k)
        perm = [(2, 0, 1), (1, 2, 0), (0, 1, 2)][axis]
        votes += vote.reshape(n, n, n).permute(*perm)
        dist = torch.minimum(dist, d.reshape(n, n, n).permute(*perm))
    return (votes / 6.0).reshape(-1), dist.reshape(-1)


class DMTet(nn.Module):
    """Deformable marching tetrahedra on a ``resolution^3``-cube tet grid in ``[-radius, radius]^3``.

    Args:
        resolution: cubes per axis of the grid (:func:`csdkit.geometry.tet_grid`), 1..256
            (``(R + 1)^3`` vertices, ``6 R^3`` tets).
        radius: half side of the box (world units).

    Parameters: ``sdf [V]`` float32 (``< 0`` inside) and ``deformation [V, 3]`` float32 (raw offsets,
    squashed by ``tanh``). Initialized as a sphere of radius ``0.5 * radius``; see
    :meth:`init_sphere`, :meth:`init_from_volume` and :meth:`init_from_mesh`.
    """

    def __init__(self, resolution: int = 64, radius: float = 1.0) -> None:
        super().__init__()
        self.resolution = check_int(_FN, "resolution", resolution, min_value=1, max_value=256)
        self.radius = check_float(_FN, "radius", radius, min_value=1e-9)
        grid, tets = tet_grid(resolution, tet_dtype=torch.int32)
        self.register_buffer("grid", grid, persistent=False)  # [V, 3] in [-1, 1]
        self.register_buffer("tets", tets, persistent=False)  # [T, 4] int32 (V < 2^31)
        self.sdf = nn.Parameter(torch.zeros(grid.shape[0]))
        self.deformation = nn.Parameter(torch.zeros(grid.shape[0], 3))
        self._grid_edges: torch.Tensor | None = None
        self.init_sphere(0.5 * self.radius)

    # ---- geometry -----------------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return int(self.grid.shape[0])

    @property
    def vertices(self) -> torch.Tensor:
        """Deformed grid vertices ``[V, 3]``: ``grid * radius + (radius / resolution) * tanh(deformation)``."""
        return self.grid * self.radius + (self.radius / self.resolution) * torch.tanh(self.deformation)

    @property
    def cell_size(self) -> float:
        """Grid step in world units (``2 radius / resolution``)."""
        return 2.0 * self.radius / self.resolution

    def extract(self) -> Mesh:
        """The zero level set as a :class:`Mesh` (vertices differentiable w.r.t. ``sdf`` and ``deformation``).

        Raises ValueError when the SDF has no zero crossing (everything inside or outside).
        """
        verts, faces = marching_tetrahedra(self.vertices, self.tets, self.sdf)
        if faces.shape[0] == 0:
            n_in = int((self.sdf < 0).sum())
            raise ValueError(f"{_FN}.extract(): the SDF has no zero crossing ({n_in} of {self.num_vertices} "
                             "vertices inside); initialize it with init_sphere(), init_from_volume() or "
                             "init_from_mesh()")
        return Mesh(verts, faces, validate=False)

    @torch.no_grad()
    def export_mesh(self, min_component_fraction: float = 0.05) -> Mesh:
        """A detached mesh without small floaters.

        Connected components with fewer than ``min_component_fraction`` x the faces of the largest
        component are dropped (0 keeps everything), and unused vertices removed.
        """
        frac = check_float(f"{_FN}.export_mesh", "min_component_fraction", min_component_fraction,
                           min_value=0.0, max_value=1.0)
        mesh = self.extract().detach()
        return keep_large_components(mesh, frac)

    # ---- initialization -------------------------------------------------------------------------
    @torch.no_grad()
    def _set(self, sdf: torch.Tensor) -> None:
        self.sdf.copy_(sdf.to(self.sdf))
        self.deformation.zero_()

    def init_sphere(self, radius: float = 0.5) -> DMTet:
        """SDF of a sphere of ``radius`` (world units) at the origin; deformation reset to 0."""
        r = check_float(f"{_FN}.init_sphere", "radius", radius, min_value=0.0)
        self._set((self.grid * self.radius).norm(dim=-1) - r)
        return self

    @torch.no_grad()
    def init_from_volume(self, volume, threshold: float | None = None, chunk: int = 2**18) -> float:
        """SDF from an :class:`~csdkit.geometry.ImplicitVolume`'s density at the grid vertices.

        ``sdf = clamp(-(density - threshold), -1, 1)`` (deformation reset to 0). With
        ``threshold=None`` the threshold is chosen automatically: Otsu's threshold of
        ``log1p(density)`` over the grid vertices (the split that best separates "empty" from
        "solid" densities), mapped back with ``expm1``. Grid vertices outside the volume's box
        (``volume.radius``) get density 0.

        Returns the threshold used. Raises ValueError when no vertex (or every vertex) is inside.
        """
        fn = f"{_FN}.init_from_volume"
        if not callable(getattr(volume, "density", None)):
            raise TypeError(f"{fn}(): volume must be an ImplicitVolume (with .density(points)), "
                            f"got {type(volume).__name__}")
        check_int(fn, "chunk", chunk, min_value=1)
        ref = next(volume.parameters())
        pts = (self.grid * self.radius).to(device=ref.device, dtype=ref.dtype)
        density = torch.cat([volume.density(pts[i:i + chunk]) for i in range(0, pts.shape[0], chunk)])
        vol_radius = getattr(volume, "radius", None)
        if isinstance(vol_radius, (int, float)):  # outside the volume's box there is nothing
            density = torch.where((pts.abs() <= vol_radius).all(-1), density, torch.zeros_like(density))
        density = density.to(self.sdf)
        if threshold is None:
            threshold = math.expm1(otsu_threshold(torch.log1p(density.clamp_min(0))))
        threshold = check_float(fn, "threshold", threshold)
        inside = int((density > threshold).sum())
        if inside == 0 or inside == density.numel():
            raise ValueError(f"{fn}(): threshold {threshold:.4g} puts {inside} of {density.numel()} grid "
                             f"vertices inside (density range [{float(density.min()):.4g}, "
                             f"{float(density.max()):.4g}]); give a threshold inside that range")
        logger.info("DMTet.init_from_volume: threshold %.4g, %d of %d vertices inside", threshold, inside,
                    density.numel())
        self._set((-(density - threshold)).clamp(-1.0, 1.0))
        return float(threshold)

    @torch.no_grad()
    def init_from_mesh(self, mesh: Mesh) -> DMTet:
        """SDF of a triangle mesh (world units, same frame as the DMTet box); deformation reset to 0.

        Inside/outside is a vote of six rays per grid vertex (along +-x, +-y, +-z, the grid lines
        themselves): each ray's signed crossing count (+1 leaving through a face whose normal points
        along the ray, -1 entering) is 1 inside and 0 outside a closed outward-oriented mesh; the
        vertex is inside when the mean of the six is > 0.5, so a hole or a flipped patch that spoils
        one or two rays does not flip it. ``|sdf|`` is the distance along the grid lines to the
        nearest crossing, capped at two grid steps. Work: each face is tested against the grid lines
        in its bounding box only (vectorized torch).
        """
        fn = f"{_FN}.init_from_mesh"
        if not isinstance(mesh, Mesh):
            raise TypeError(f"{fn}(): mesh must be a csdkit.Mesh, got {type(mesh).__name__}")
        dev = self.sdf.device
        mv, mf = mesh.vertices.detach().to(device=dev, dtype=torch.float64), mesh.faces.to(dev)
        lin = torch.linspace(-self.radius, self.radius, self.resolution + 1, dtype=torch.float64, device=dev)
        votes, dist = _ray_votes_and_distances(lin, mv, mf)
        inside = votes > 0.5
        if not bool(inside.any()):
            warnings.warn(f"{fn}(): no grid vertex is inside the mesh (it is thinner than a grid step, or "
                          "outside the box); the DMTet is empty", RuntimeWarning, stacklevel=2)
        dist = dist.clamp(min=1e-6 * self.cell_size, max=2.0 * self.cell_size)
        self._set(torch.where(inside, -dist, dist))
        return self

    # ---- regularizers ---------------------------------------------------------------------------
    def grid_edges(self) -> torch.Tensor:
        """Unique edges ``[E, 2]`` int32 of the tet grid (:func:`~csdkit.geometry.tet_grid.tet_grid_edges`, cached)."""
        if self._grid_edges is None or self._grid_edges.device != self.tets.device:
            self._grid_edges = tet_grid_edges(self.resolution, device=self.tets.device)
        return self._grid_edges

    def sdf_entropy_loss(self) -> torch.Tensor:
        """Sign-flip entropy on the grid edges that cross the surface (fights floaters and noise).

        Mean over crossing edges ``(a, b)`` of ``BCE(sigmoid(sdf_a), [sdf_b > 0]) +
        BCE(sigmoid(sdf_b), [sdf_a > 0])``; 0 when nothing crosses. Differentiable w.r.t. ``sdf``.
        """
        e = self.grid_edges()
        sa, sb = self.sdf[e[:, 0]], self.sdf[e[:, 1]]
        cross = (sa > 0) != (sb > 0)
        if not bool(cross.any()):
            return self.sdf.sum() * 0.0
        sa, sb = sa[cross], sb[cross]
        bce = nn.functional.binary_cross_entropy_with_logits
        return bce(sa, (sb > 0).to(sa.dtype)) + bce(sb, (sa > 0).to(sb.dtype))

    @staticmethod
    def normal_consistency_loss(mesh: Mesh) -> torch.Tensor:
        """Mean ``1 - cos`` between normals of faces sharing an edge (see :mod:`.mesh_regularizers`)."""
        return normal_consistency_loss(mesh)

    @staticmethod
    def laplacian_loss(mesh: Mesh) -> torch.Tensor:
        """Mean squared uniform Laplacian of the mesh vertices (see :mod:`.mesh_regularizers`)."""
        return laplacian_loss(mesh)

    # ---- state ------------------------------------------------------------------------------------
    def get_extra_state(self) -> dict:
        return {"resolution": self.resolution, "radius": self.radius}

    def set_extra_state(self, state: dict) -> None:
        if state.get("resolution") != self.resolution or state.get("radius") != self.radius:
            raise ValueError(f"{_FN}.load_state_dict(): the state is of a DMTet(resolution="
                             f"{state.get('resolution')}, radius={state.get('radius')}), this one is "
                             f"DMTet(resolution={self.resolution}, radius={self.radius})")

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, radius={self.radius}, vertices={self.num_vertices}, " \
               f"tets={int(self.tets.shape[0])}"
