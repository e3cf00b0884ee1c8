"""Small deterministic scenes shared by the rasterizer tests (tests/test_raster_*.py)."""

from __future__ import annotations

import torch
import trimesh

from csdkit.render.cameras import Cameras


def icosphere(subdivisions: int = 2, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """A closed unit icosphere: vertices ``[V, 3]`` and int32 faces ``[T, 3]``."""
    m = trimesh.creation.icosphere(subdivisions=subdivisions)
    return torch.tensor(m.vertices, dtype=dtype), torch.tensor(m.faces, dtype=torch.int32)


def orbit_clip(verts: torch.Tensor, elevations, azimuths, distance: float = 3.0, fov: float = 40.0,
               aspect: float = 1.0) -> torch.Tensor:
    """Clip-space positions ``[B, V, 4]`` of ``verts`` seen from cameras on a sphere."""
    cams = Cameras.from_spherical(elevations, azimuths, distance, fov_y=fov)
    return cams.project(verts.float(), aspect=aspect).to(verts.dtype)


def triangle_soup(n_triangles: int, batch: int = 2, seed: int = 0, dtype=torch.float32,
                  behind_camera: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Random overlapping triangles in front of (and optionally crossing) the camera plane.

    Returns clip-space positions ``[B, 3 T, 4]`` (every triangle has its own vertices) and
    int32 faces ``[T, 3]``.
    """
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(n_triangles, 1, 3, generator=g) * 1.6 - 0.8
    offsets = (torch.rand(n_triangles, 3, 3, generator=g) - 0.5) * 0.9
    verts = (centers + offsets).reshape(-1, 3)
    if behind_camera:  # a few large triangles that reach behind the camera (w <= 0)
        k = max(1, n_triangles // 4)
        verts.view(n_triangles, 3, 3)[:k, 0, :] *= torch.tensor([4.0, 4.0, 1.0])
        verts.view(n_triangles, 3, 3)[:k, 0, 2] = 3.5
    elevation, azimuth = torch.linspace(-20, 30, batch), torch.linspace(-40, 60, batch)
    cams = Cameras.from_spherical(elevation, azimuth, 2.5, fov_y=50.0)
    pos = cams.project(verts).to(dtype)
    faces = torch.arange(3 * n_triangles, dtype=torch.int32).view(n_triangles, 3)
    return pos.contiguous(), faces


def cast_rays_nearest(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor,
                      dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute-force Moeller-Trumbore ray casting: (nearest triangle index or -1 ``[N]``, distance ``[N]``)."""
    v = verts.double()[faces.long()]  # [T, 3, 3]
    o, d = origins.double().reshape(-1, 1, 3), dirs.double().reshape(-1, 1, 3)
    e1, e2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    p = torch.linalg.cross(d.expand(-1, e2.shape[0], -1), e2.expand(d.shape[0], -1, -1), dim=-1)
    det = (e1 * p).sum(-1)
    inv = 1.0 / det
    s = o - v[:, 0]
    u = (s * p).sum(-1) * inv
    q = torch.linalg.cross(s, e1.expand_as(s), dim=-1)
    w = (d * q).sum(-1) * inv
    t = (e2 * q).sum(-1) * inv
    hit = (det.abs() > 1e-12) & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 0)
    t = torch.where(hit, t, torch.full_like(t, float("inf")))
    dist, idx = t.min(dim=1)
    return torch.where(torch.isfinite(dist), idx, torch.full_like(idx, -1)), dist
