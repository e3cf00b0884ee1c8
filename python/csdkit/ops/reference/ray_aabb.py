"""Pure-PyTorch reference of the ray / axis-aligned-box intersection (see ``csdkit/volrend_ray.h``)."""

from __future__ import annotations

import torch


def ray_aabb_intersect_reference(
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    aabb: torch.Tensor,
    near_plane: float = 0.0,
    far_plane: float = float("inf"),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab test of rays ``o + t d`` against the box ``aabb = (xmin, ymin, zmin, xmax, ymax, zmax)``.

    Per axis, ``t1 = (lo - o) / d`` and ``t2 = (hi - o) / d``; an axis with ``d = 0`` admits every
    ``t`` if ``lo <= o <= hi`` and none otherwise. ``t_near = max(near_plane, max_axis min(t1, t2))``,
    ``t_far = min(far_plane, min_axis max(t1, t2))`` and ``hit = t_near < t_far``; rays that miss
    get ``t_near = t_far = 0``. Returns ``(t_near [R], t_far [R], hit [R] bool)``.
    """
    lo, hi = aabb[:3].to(rays_o.dtype), aabb[3:].to(rays_o.dtype)
    inf = torch.tensor(float("inf"), dtype=rays_o.dtype, device=rays_o.device)
    zero_d = rays_d == 0
    safe_d = torch.where(zero_d, torch.ones_like(rays_d), rays_d)
    t1 = (lo - rays_o) / safe_d
    t2 = (hi - rays_o) / safe_d
    inside = (rays_o >= lo) & (rays_o <= hi)
    tmin = torch.where(zero_d, torch.where(inside, -inf, inf), torch.minimum(t1, t2))
    tmax = torch.where(zero_d, torch.where(inside, inf, -inf), torch.maximum(t1, t2))
    t_near = torch.clamp(tmin.amax(dim=1), min=near_plane)
    t_far = torch.clamp(tmax.amin(dim=1), max=far_plane)
    hit = t_near < t_far
    zero = rays_o.new_zeros(())
    return torch.where(hit, t_near, zero), torch.where(hit, t_far, zero), hit
