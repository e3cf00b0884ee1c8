"""Pure-PyTorch reference of ray marching through an occupancy grid (see ``csdkit/volrend_marching.h``).

The marching rule, written once here and mirrored exactly by the kernels:

* ``(t_near, t_far)`` = intersection of the ray with the *outermost* grid box (clipped to
  ``[near_plane, far_plane]``); rays that miss (or have ``t_far = inf``: a zero direction without
  far plane) get no samples.
* ``t_0 = t_near + u * dt_0`` with ``u`` the ray's jitter in ``[0, 1)`` (0 when not stratified).
* Step ``k`` spans ``[t_k, t_k + dt_k]``. Without a cone angle ``dt_k = step_size`` and
  ``t_k = t_0 + k * step_size`` (no accumulated rounding); with ``cone_angle > 0``,
  ``dt_k = max(step_size, t_k * cone_angle)`` and ``t_{k+1} = t_k + dt_k``.
* Step ``k`` is visited while its midpoint ``t_k + dt_k / 2 < t_far``, and emitted when the
  midpoint ``o + mid * d`` lies in an occupied cell of the finest grid level that contains it.
* Cell of a point in level ``l`` with box ``[lo, hi]`` and resolution ``res``:
  ``u = (x - lo) * (res / (hi - lo))`` per axis, cell ``floor(u)``, inside when ``0 <= u < res``.
"""

from __future__ import annotations

import torch

from .ray_aabb import ray_aabb_intersect_reference


def occupancy_lookup_reference(
    x: torch.Tensor, binaries: torch.Tensor | None, aabbs: torch.Tensor
) -> torch.Tensor:
    """``[N]`` bool: whether points ``x [N, 3]`` fall in an occupied cell.

    ``binaries [L, rx, ry, rz]`` bool (None: every cell occupied), ``aabbs [L, 6]`` of x's dtype,
    level boxes from fine to coarse. A point takes the finest level whose box contains it.
    """
    n_levels = aabbs.shape[0]
    occupied = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    resolved = torch.zeros_like(occupied)
    for level in range(n_levels):
        lo, hi = aabbs[level, :3], aabbs[level, 3:]
        if binaries is None:
            res = torch.ones(3, dtype=x.dtype, device=x.device)
        else:
            res = torch.tensor(binaries.shape[1:], dtype=x.dtype, device=x.device)
        u = (x - lo) * (res / (hi - lo))
        inside = ((u >= 0) & (u < res)).all(dim=1) & ~resolved
        if binaries is None:
            occ = inside
        else:
            cell = torch.floor(u).long()
            rx, ry, rz = binaries.shape[1:]
            cell = torch.stack([cell[:, 0].clamp(0, rx - 1), cell[:, 1].clamp(0, ry - 1),
                                cell[:, 2].clamp(0, rz - 1)], dim=1)
            occ = inside & binaries[level, cell[:, 0], cell[:, 1], cell[:, 2]]
        occupied |= occ
        resolved |= inside
    return occupied


def march_rays_reference(
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    binaries: torch.Tensor | None,
    aabbs: torch.Tensor,
    step_size: float,
    cone_angle: float = 0.0,
    near_plane: float = 0.0,
    far_plane: float = float("inf"),
    jitter: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """March rays through the grid; returns ``(ray_indices [S] int64, t_starts [S], t_ends [S],
    packed_info [R, 2] int64)`` with samples ordered by ray, then by ``t``.

    ``aabbs [L, 6]`` are the level boxes (fine to coarse) in rays' dtype; ``jitter [R]`` in
    ``[0, 1)`` or None.
    """
    n_rays = rays_o.shape[0]
    dt = torch.tensor(step_size, dtype=rays_o.dtype, device=rays_o.device)
    t_near, t_far, hit = ray_aabb_intersect_reference(rays_o, rays_d, aabbs[-1], near_plane, far_plane)
    hit = hit & torch.isfinite(t_far)  # a zero direction without far plane: no samples
    u = jitter if jitter is not None else torch.zeros_like(t_near)
    t0 = t_near + u * dt
    cone = cone_angle > 0
    rays = torch.nonzero(hit).flatten()
    t = t0[rays]
    k = 0
    chunks_ray, chunks_t0, chunks_t1 = [], [], []
    while rays.numel() > 0:
        if cone:
            step = torch.clamp(t * cone_angle, min=dt)
        else:
            t = t0[rays] + torch.tensor(float(k), dtype=rays_o.dtype, device=rays_o.device) * dt
            step = dt.expand_as(t)
        mid = t + 0.5 * step
        active = mid < t_far[rays]
        rays, t, step, mid = rays[active], t[active], step[active], mid[active]
        if rays.numel() == 0:
            break
        x = rays_o[rays] + mid[:, None] * rays_d[rays]
        occ = occupancy_lookup_reference(x, binaries, aabbs)
        chunks_ray.append(rays[occ])
        chunks_t0.append(t[occ])
        chunks_t1.append((t + step)[occ])
        t = t + step
        k += 1
    if chunks_ray:
        ray_indices = torch.cat(chunks_ray)
        t_starts, t_ends = torch.cat(chunks_t0), torch.cat(chunks_t1)
        # Stable sort by ray keeps each ray's samples in marching order.
        order = torch.sort(ray_indices, stable=True).indices
        ray_indices, t_starts, t_ends = ray_indices[order], t_starts[order], t_ends[order]
    else:
        ray_indices = torch.zeros(0, dtype=torch.long, device=rays_o.device)
        t_starts = t_ends = rays_o.new_zeros(0)
    counts = torch.bincount(ray_indices, minlength=n_rays)
    starts = torch.cumsum(counts, 0) - counts
    packed_info = torch.stack([starts, counts], dim=1).long()
    return ray_indices.long(), t_starts, t_ends, packed_info
