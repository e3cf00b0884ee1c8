"""Start shapes for an :class:`~csdkit.geometry.ImplicitVolume`: a density bias shaped like a mesh.

Magic3D's ``linear_blob`` bias ``scale * (1 - |x| / std)`` equals ``-(scale / std) * sdf_ball(x)``
for the ball of radius ``std``. :class:`MeshDensityBias` uses the same formula with the signed distance
of any closed mesh, so a NeRF can start from a ring, a box or a user's model instead of a ball
(threestudio's ``shape_init``). The signed distance is tabulated once on a lattice and read back by
trilinear interpolation, which is differentiable to any order (analytic normals in training too).
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops._checks import check_float, check_int, check_tensor
from .dmtet import _ray_votes_and_distances
from .mesh import Mesh
from .nearest import nearest_vertex

__all__ = ["MeshDensityBias", "mesh_sdf_lattice", "normalize_to_box", "sample_surface"]

_FN = "MeshDensityBias"


def sample_surface(mesh: Mesh, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points ``[n, 3]`` float64 (CPU) drawn uniformly by area on the mesh's triangles."""
    v = mesh.vertices.detach().to("cpu", torch.float64)
    tri = v[mesh.faces.to("cpu").long()]  # [F, 3, 3]
    area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)
    if not bool(area.sum() > 0):
        raise ValueError(f"{_FN}: the mesh has no triangle of non-zero area")
    face = torch.multinomial(area, n, replacement=True, generator=generator)
    u, w = torch.rand(n, generator=generator, dtype=torch.float64), torch.rand(n, generator=generator,
                                                                                  dtype=torch.float64)
    flip = u + w > 1.0  # fold the unit square onto the triangle
    u, w = torch.where(flip, 1.0 - u, u), torch.where(flip, 1.0 - w, w)
    t = tri[face]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + w[:, None] * (t[:, 2] - t[:, 0])


def normalize_to_box(mesh: Mesh, half_extent: float) -> Mesh:
    """The mesh centred on its bounding box and scaled uniformly so its largest half side is ``half_extent``."""
    check_float("normalize_to_box", "half_extent", half_extent, min_value=1e-9)
    v = mesh.vertices.detach().to(torch.float32)
    lo, hi = v.min(0).values, v.max(0).values
    size = float((hi - lo).max()) / 2.0
    if size <= 0:
        raise ValueError("normalize_to_box(): the mesh has zero extent")
    return Mesh((v - (lo + hi) / 2) * (half_extent / size), mesh.faces)


@torch.no_grad()
def mesh_sdf_lattice(mesh: Mesh, resolution: int = 48, radius: float = 1.0, n_samples: int = 20000,
                     seed: int = 0) -> torch.Tensor:
    """Signed distance of a closed mesh on the lattice ``linspace(-radius, radius, resolution + 1)^3``.

    The sign is the six-ray inside vote of :meth:`csdkit.DMTet.init_from_mesh` (negative inside); the
    magnitude is the distance to the nearest of ``n_samples`` area-uniform surface points (an
    overestimate by about the samples' spacing).

    Returns:
        ``[n, n, n]`` float32 (CPU), ``n = resolution + 1``, indexed ``[x, y, z]``.
    """
    check_int("mesh_sdf_lattice", "resolution", resolution, min_value=2, max_value=256)
    n = resolution + 1
    lin = torch.linspace(-radius, radius, n, dtype=torch.float64)
    votes, _ = _ray_votes_and_distances(lin, mesh.vertices.detach().to("cpu", torch.float64),
                                        mesh.faces.to("cpu"))
    samples = sample_surface(mesh, n_samples, torch.Generator().manual_seed(seed)).float()
    lattice = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), -1).reshape(-1, 3).float()
    nearest = nearest_vertex(lattice, samples)
    dist = (lattice - samples[nearest]).norm(dim=-1)
    sdf = torch.where(votes > 0.5, -dist, dist)
    return sdf.reshape(n, n, n).float()


def _trilinear(grid: torch.Tensor, points: torch.Tensor, radius: float) -> torch.Tensor:
    """``grid [n, n, n]`` (lattice over ``[-radius, radius]^3``) at ``points [N, 3]`` -> ``[N]``; clamped at the box.

    One gather of the 8 corners ``[N, 8]`` (corner ``4 dx + 2 dy + dz``), then lerps along z, y and x: the
    weights are polynomials of ``points``, so it is differentiable to any order.
    """
    n = grid.shape[0]
    u = ((points / radius + 1.0) * 0.5 * (n - 1)).clamp(0.0, n - 1.0)
    i0 = u.detach().floor().clamp(max=n - 2).long()
    f = u - i0.to(u.dtype)  # [N, 3] in [0, 1]
    base = (i0[:, 0] * n + i0[:, 1]) * n + i0[:, 2]
    offsets = torch.tensor([0, 1, n, n + 1, n * n, n * n + 1, n * n + n, n * n + n + 1], device=points.device)
    c = grid.reshape(-1).to(points.dtype)[base[:, None] + offsets]
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    cz = c[:, 0::2] * (1 - fz) + c[:, 1::2] * fz  # [N, 4], corner 2 dx + dy
    cy = cz[:, 0::2] * (1 - fy) + cz[:, 1::2] * fy  # [N, 2], corner dx
    return (cy[:, 0:1] * (1 - fx) + cy[:, 1:2] * fx).squeeze(1)


class MeshDensityBias(nn.Module):
    """Density bias ``scale * (-sdf(x) / length)`` from a signed distance tabulated on a lattice.

    With the SDF of a ball of radius ``length`` this is Magic3D's ``linear_blob``: ``scale`` at the
    centre, 0 on the surface, negative (empty) outside, falling by ``scale / length`` per unit.

    Args:
        sdf: ``[n, n, n]`` float signed distance (negative inside) on the lattice
            ``linspace(-radius, radius, n)^3``, indexed ``[x, y, z]`` (:func:`mesh_sdf_lattice`); a buffer,
            so it is saved in the owning volume's ``state_dict``.
        radius: half side of the lattice's box (world units).
        scale, length: the bias's height and its length scale (world units).

    Call with ``points [N, 3]`` (any float dtype, the buffer's device) -> ``[N]``.
    """

    def __init__(self, sdf: torch.Tensor, radius: float = 1.0, scale: float = 10.0, length: float = 0.65) -> None:
        super().__init__()
        check_tensor(_FN, "sdf", sdf, shape=(None, None, None))
        if sdf.shape[0] < 2 or len(set(sdf.shape)) != 1 or not sdf.is_floating_point():
            raise ValueError(f"{_FN}(): sdf must be a float cube [n, n, n] with n >= 2, got "
                             f"{sdf.dtype} {list(sdf.shape)}")
        self.radius = check_float(_FN, "radius", radius, min_value=1e-9)
        self.scale = check_float(_FN, "scale", scale)
        self.length = check_float(_FN, "length", length, min_value=1e-9)
        self.register_buffer("sdf", sdf.detach().float().clone())

    @classmethod
    def from_mesh(cls, mesh: Mesh, *, half_extent: float | None = 0.85, resolution: int = 48, radius: float = 1.0,
                  scale: float = 10.0, length: float = 0.65) -> MeshDensityBias:
        """The bias of ``mesh``, first normalized to ``half_extent`` (None: used as it is, world units)."""
        if not isinstance(mesh, Mesh):
            raise TypeError(f"{_FN}.from_mesh(): mesh must be a csdkit.Mesh, got {type(mesh).__name__}")
        if half_extent is not None:
            mesh = normalize_to_box(mesh, half_extent)
        return cls(mesh_sdf_lattice(mesh, resolution, radius), radius, scale, length)

    @classmethod
    def empty(cls, resolution: int, radius: float = 1.0, scale: float = 10.0, length: float = 0.65) -> MeshDensityBias:
        """A placeholder of the right size, to be filled by ``load_state_dict``."""
        n = resolution + 1
        return cls(torch.zeros(n, n, n), radius, scale, length)

    def signed_distance(self, points: torch.Tensor) -> torch.Tensor:
        """Interpolated signed distance ``[N]`` at ``points [N, 3]``."""
        check_tensor(f"{_FN}.signed_distance", "points", points, shape=(None, 3), device=self.sdf.device)
        return _trilinear(self.sdf, points, self.radius)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return -self.scale * self.signed_distance(points) / self.length

    def extra_repr(self) -> str:
        return f"lattice={self.sdf.shape[0]}, radius={self.radius}, scale={self.scale}, length={self.length}"
