"""Perspective look-at cameras, in batches, with the conventions every csdkit renderer uses.

Conventions (stated once, used everywhere):

* World space is right-handed with **+Y up**; objects are centred at the origin and their front
  faces **+Z**. A camera at azimuth 0, elevation 0 sits on the +Z axis looking at the front;
  azimuth grows towards +X (counter-clockwise seen from above), elevation towards +Y.
* Camera space is OpenGL's: the camera looks down **-Z**, +X right, +Y up. ``c2w`` maps camera to
  world coordinates (4x4, column vectors: ``p_world = c2w @ [p_cam, 1]``).
* Clip space is OpenGL's (``proj`` maps the view frustum to NDC in [-1, 1]^3, z=-1 at ``near``).
  The low-level rasterizer (:func:`csdkit.ops.rasterize`, nvdiffrast conventions) writes pixel
  row 0 at NDC y = -1; renderers flip their outputs so that **images have row 0 at the top**,
  and :meth:`Cameras.rays` generates rays in that image order.
* Angles in the public API are degrees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..ops._checks import check_tensor

_FN = "Cameras"


def _as_batch(value, n: int | None, name: str, device, dtype=torch.float32) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=dtype, device=device)
    if t.dim() == 0:
        t = t.expand(n if n is not None else 1)
    if t.dim() != 1:
        raise ValueError(f"{_FN}: {name} must be a number or a 1-D sequence, got shape {list(t.shape)}")
    return t


def look_at_c2w(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Camera-to-world matrices ``[B, 4, 4]`` for cameras at ``eye [B, 3]`` looking at ``target [B, 3]``."""
    forward = torch.nn.functional.normalize(target - eye, dim=-1)  # camera -Z
    right = torch.linalg.cross(forward, up.expand_as(forward), dim=-1)
    # Looking straight up or down: pick any right vector orthogonal to forward.
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    alt = torch.linalg.cross(forward, torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype, device=eye.device)
                             .expand_as(forward), dim=-1)
    right = torch.nn.functional.normalize(torch.where(degenerate, alt, right), dim=-1)
    true_up = torch.linalg.cross(right, forward, dim=-1)
    c2w = torch.zeros(eye.shape[0], 4, 4, dtype=eye.dtype, device=eye.device)
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = true_up
    c2w[:, :3, 2] = -forward
    c2w[:, :3, 3] = eye
    c2w[:, 3, 3] = 1.0
    return c2w


class Cameras:
    """A batch of ``B`` perspective pinhole cameras.

    Args:
        c2w: ``[B, 4, 4]`` float32 camera-to-world matrices (OpenGL camera axes, see module doc).
        fov_y: vertical field of view in degrees, a number or ``[B]``.
        near, far: clip distances used by :meth:`proj` (world units).

    Build them with :meth:`look_at`, :meth:`from_spherical`, :meth:`sample` (random views for
    optimization) or :meth:`orbit` (turntables for previews).
    """

    def __init__(self, c2w: torch.Tensor, fov_y: float | torch.Tensor = 50.0, near: float = 0.05,
                 far: float = 100.0) -> None:
        check_tensor(_FN, "c2w", c2w, dtype=(torch.float32, torch.float64), shape=("B", 4, 4))
        self.c2w = c2w
        self.fov_y = _as_batch(fov_y, c2w.shape[0], "fov_y", c2w.device, c2w.dtype)
        if self.fov_y.shape[0] != c2w.shape[0]:
            raise ValueError(f"{_FN}: fov_y has {self.fov_y.shape[0]} values for {c2w.shape[0]} cameras")
        if not (0 < near < far):
            raise ValueError(f"{_FN}: need 0 < near < far, got near={near}, far={far}")
        self.near, self.far = float(near), float(far)

    # ---- constructors ---------------------------------------------------------------------------
    @classmethod
    def look_at(cls, eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), fov_y: float | torch.Tensor = 50.0,
                device: torch.device | str | None = None, **kw) -> Cameras:
        """Cameras at ``eye [B, 3]`` (or ``[3]``) looking at ``target``, with world ``up``."""
        eye = torch.as_tensor(eye, dtype=torch.float32, device=device).reshape(-1, 3)
        target = torch.as_tensor(target, dtype=torch.float32, device=eye.device).reshape(-1, 3).expand_as(eye)
        up = torch.as_tensor(up, dtype=torch.float32, device=eye.device).reshape(1, 3)
        return cls(look_at_c2w(eye, target, up), fov_y, **kw)

    @classmethod
    def from_spherical(cls, elevation, azimuth, distance, fov_y=50.0, target=(0.0, 0.0, 0.0),
                       device: torch.device | str | None = None, **kw) -> Cameras:
        """Cameras on spheres around ``target``; angles in degrees (numbers or ``[B]``)."""
        el = torch.as_tensor(elevation, dtype=torch.float32, device=device).reshape(-1)
        az = torch.as_tensor(azimuth, dtype=torch.float32, device=device).reshape(-1)
        dist = torch.as_tensor(distance, dtype=torch.float32, device=device).reshape(-1)
        n = max(el.numel(), az.numel(), dist.numel())
        el, az, dist = (t.expand(n) if t.numel() == 1 else t for t in (el, az, dist))
        if not (el.numel() == az.numel() == dist.numel() == n):
            raise ValueError(f"{_FN}.from_spherical: elevation, azimuth and distance must have the same "
                             f"length or length 1, got {el.numel()}, {az.numel()}, {dist.numel()}")
        elr, azr = torch.deg2rad(el), torch.deg2rad(az)
        offset = torch.stack([torch.cos(elr) * torch.sin(azr), torch.sin(elr), torch.cos(elr) * torch.cos(azr)], -1)
        target_t = torch.as_tensor(target, dtype=torch.float32, device=el.device).reshape(1, 3)
        return cls.look_at(target_t + dist[:, None] * offset, target_t.expand(n, 3), fov_y=fov_y, **kw)

    @classmethod
    def sample(cls, batch: int, *, elevation_range: Sequence[float] = (-10.0, 45.0),
               azimuth_range: Sequence[float] = (-180.0, 180.0), distance_range: Sequence[float] = (2.6, 3.2),
               fov_range: Sequence[float] = (45.0, 55.0), generator: torch.Generator | None = None,
               device: torch.device | str | None = None, **kw) -> Cameras:
        """Random cameras looking at the origin (defaults: the CSD setting for unit-radius objects).

        Elevation is sampled uniformly in *height* (``sin(elevation)``) so views are uniform on the
        spherical band; azimuth, distance and field of view uniformly in their ranges.
        """
        for name, r in (("elevation_range", elevation_range), ("azimuth_range", azimuth_range),
                        ("distance_range", distance_range), ("fov_range", fov_range)):
            if len(r) != 2 or r[0] > r[1]:
                raise ValueError(f"{_FN}.sample: {name} must be (low, high) with low <= high, got {tuple(r)}")
        if distance_range[0] <= 0:
            raise ValueError(f"{_FN}.sample: distance_range must be positive, got {tuple(distance_range)}")

        def uniform(lo, hi):
            u = torch.rand(batch, generator=generator, dtype=torch.float32)
            return lo + (hi - lo) * u

        s0, s1 = (math.sin(math.radians(e)) for e in elevation_range)
        elevation = torch.rad2deg(torch.asin(uniform(s0, s1).clamp(-1, 1)))
        azimuth = uniform(*azimuth_range)
        distance = uniform(*distance_range)
        fov = uniform(*fov_range)
        return cls.from_spherical(elevation.to(device), azimuth.to(device), distance.to(device),
                                  fov_y=fov.to(device), device=device, **kw)

    @classmethod
    def orbit(cls, n: int, *, elevation: float = 15.0, distance: float = 2.9, fov_y: float = 50.0,
              start_azimuth: float = 0.0, device: torch.device | str | None = None, **kw) -> Cameras:
        """``n`` cameras evenly spaced in azimuth around the origin (turntables, previews)."""
        az = start_azimuth + torch.arange(n, dtype=torch.float32) * (360.0 / n)
        return cls.from_spherical(elevation, az.to(device), distance, fov_y=fov_y, device=device, **kw)

    # ---- derived quantities --------------------------------------------------------------------
    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, idx) -> Cameras:
        c2w = self.c2w[idx]
        fov = self.fov_y[idx]
        if c2w.dim() == 2:
            c2w, fov = c2w[None], fov[None]
        return Cameras(c2w, fov, self.near, self.far)

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    def to(self, device) -> Cameras:
        return Cameras(self.c2w.to(device), self.fov_y.to(device), self.near, self.far)

    @property
    def position(self) -> torch.Tensor:
        """Camera centres ``[B, 3]`` in world space."""
        return self.c2w[:, :3, 3]

    @property
    def w2c(self) -> torch.Tensor:
        """World-to-camera matrices ``[B, 4, 4]``."""
        return torch.linalg.inv(self.c2w)

    @property
    def elevation(self) -> torch.Tensor:
        """Elevation of the camera centre seen from the origin, degrees ``[B]``."""
        p = self.position
        return torch.rad2deg(torch.atan2(p[:, 1], p[:, [0, 2]].norm(dim=-1)))

    @property
    def azimuth(self) -> torch.Tensor:
        """Azimuth of the camera centre around +Y, degrees in (-180, 180], 0 = on the +Z axis ``[B]``."""
        p = self.position
        return torch.rad2deg(torch.atan2(p[:, 0], p[:, 2]))

    @property
    def distance(self) -> torch.Tensor:
        """Distance of the camera centre from the origin ``[B]``."""
        return self.position.norm(dim=-1)

    def proj(self, aspect: float = 1.0) -> torch.Tensor:
        """OpenGL perspective projection matrices ``[B, 4, 4]`` (aspect = width / height)."""
        f = 1.0 / torch.tan(torch.deg2rad(self.fov_y) / 2)
        n, fa = self.near, self.far
        p = torch.zeros(len(self), 4, 4, dtype=self.c2w.dtype, device=self.device)
        p[:, 0, 0] = f / aspect
        p[:, 1, 1] = f
        p[:, 2, 2] = -(fa + n) / (fa - n)
        p[:, 2, 3] = -2.0 * fa * n / (fa - n)
        p[:, 3, 2] = -1.0
        return p

    def mvp(self, aspect: float = 1.0) -> torch.Tensor:
        """World-to-clip matrices ``[B, 4, 4]`` = ``proj @ w2c``."""
        return self.proj(aspect) @ self.w2c

    def project(self, points: torch.Tensor, aspect: float = 1.0) -> torch.Tensor:
        """Clip-space positions ``[B, V, 4]`` of world points ``[V, 3]`` or ``[B, V, 3]``."""
        if points.dim() == 2:
            points = points[None].expand(len(self), -1, -1)
        homo = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
        return homo @ self.mvp(aspect).transpose(1, 2)

    def rays(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel rays through pixel centres, image order (row 0 at the top).

        Returns:
            origins ``[B, H, W, 3]`` and unit directions ``[B, H, W, 3]`` in world space.
        """
        tan_half = torch.tan(torch.deg2rad(self.fov_y) / 2)  # [B]
        aspect = width / height
        ys = (1.0 - 2.0 * (torch.arange(height, device=self.device, dtype=self.c2w.dtype) + 0.5) / height)
        xs = (2.0 * (torch.arange(width, device=self.device, dtype=self.c2w.dtype) + 0.5) / width - 1.0)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        d_cam = torch.stack([
            gx[None] * (tan_half * aspect)[:, None, None],
            gy[None] * tan_half[:, None, None],
            -torch.ones_like(gx)[None].expand(len(self), -1, -1),
        ], dim=-1)  # [B, H, W, 3]
        d_world = torch.einsum("bij,bhwj->bhwi", self.c2w[:, :3, :3], d_cam)
        d_world = torch.nn.functional.normalize(d_world, dim=-1)
        origins = self.position[:, None, None, :].expand_as(d_world)
        return origins, d_world

    def __repr__(self) -> str:
        return f"Cameras(n={len(self)}, device={self.device})"
