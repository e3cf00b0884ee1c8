"""Ray marching through an occupancy grid, producing packed samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from .. import _native
from ._checks import check_float, check_int, check_tensor
from .occupancy_grid import OccupancyGrid
from .ray_aabb import as_aabb, check_planes
from .reference.ray_marching import march_rays_reference

__all__ = ["RaySamples", "march_rays"]

_FN = "march_rays"
_FLOATS = (torch.float32, torch.float64)


class RaySamples(NamedTuple):
    """Packed samples of ``R`` rays (``S`` samples in all), ordered by ray then by ``t``.

    Attributes:
        ray_indices: ``[S]`` int64, the ray of each sample.
        t_starts: ``[S]`` start of each sample's interval along its ray (rays' dtype).
        t_ends: ``[S]`` end of each sample's interval.
        packed_info: ``[R, 2]`` int64 ``(start, count)``: ray ``r`` owns samples
            ``start : start + count``; rays without samples have count 0.
    """

    ray_indices: torch.Tensor
    t_starts: torch.Tensor
    t_ends: torch.Tensor
    packed_info: torch.Tensor

    @property
    def n_rays(self) -> int:
        return self.packed_info.shape[0]

    @property
    def n_samples(self) -> int:
        return self.ray_indices.shape[0]


def _jitter(n: int, dtype: torch.dtype, device: torch.device, generator) -> torch.Tensor:
    if isinstance(generator, int) and not isinstance(generator, bool):
        generator = torch.Generator().manual_seed(generator)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{_FN}(): generator must be a torch.Generator, an int seed or None, "
                        f"got {type(generator).__name__}")
    gen_device = generator.device if generator is not None else device
    # Drawn in float64 and rounded down into [0, 1) of dtype, so the same seed gives the same
    # jitter whatever the rays' dtype or device.
    u = torch.rand(n, generator=generator, dtype=torch.float64, device=gen_device).to(dtype)
    u = torch.where(u >= 1, torch.nextafter(torch.ones((), dtype=dtype), torch.zeros((), dtype=dtype)), u)
    return u.to(device).contiguous()


def march_rays(
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    grid: OccupancyGrid | None = None,
    *,
    aabb: float | Sequence[float] | torch.Tensor | None = None,
    step_size: float | None = None,
    n_samples: int = 512,
    cone_angle: float = 0.0,
    near_plane: float = 0.0,
    far_plane: float = math.inf,
    stratified: bool = False,
    generator: torch.Generator | int | None = None,
) -> RaySamples:
    """March rays with a fixed step, keeping only the steps whose midpoint is in an occupied cell.

    The exact rule (shared by the kernels and :func:`csdkit.ops.reference.march_rays_reference`):
    rays are intersected with the outermost grid box and clipped to ``[near_plane, far_plane]``;
    ``t_0 = t_near + u * step_size`` with ``u`` uniform in [0, 1) per ray when ``stratified``
    (else 0); step ``k`` spans ``[t_k, t_k + dt_k]`` with ``t_k = t_0 + k * step_size`` and
    ``dt_k = step_size`` (or, with ``cone_angle > 0``, ``dt_k = max(step_size, t_k * cone_angle)``
    and ``t_{k+1} = t_k + dt_k``); steps are visited while their midpoint is before ``t_far`` and
    kept when the midpoint lies in an occupied cell. The compiled kernels jump over empty cells.

    Args:
        rays_o: ``[R, 3]`` float32 or float64 origins, CPU or CUDA.
        rays_d: ``[R, 3]`` directions, same dtype and device. Use unit directions so that ``t`` and
            ``step_size`` are world distances.
        grid: an :class:`OccupancyGrid` on rays' device, or None to march the whole ``aabb``.
        aabb: the box to march when ``grid`` is None (radius, 6 numbers or tensor ``[6]``).
        step_size: marching step; default ``diagonal(box) / n_samples`` of the (level-0) box,
            i.e. ``sqrt(3) * 2 * radius / n_samples`` for a cube of that radius.
        n_samples: samples per box diagonal that define the default step (default 512).
        cone_angle: > 0 grows the step with distance (``dt = max(step_size, t * cone_angle)``).
        near_plane, far_plane: clip distances along the rays.
        stratified: jitter each ray's first sample uniformly within one step (training).
        generator: a ``torch.Generator`` or an int seed for the jitter (default: torch's global
            generator). The same seed gives the same samples on every device.

    Returns:
        :class:`RaySamples` ``(ray_indices [S] int64, t_starts [S], t_ends [S], packed_info [R, 2] int64)``
        on rays' device. Not differentiable.
    """
    dims: dict[str, int] = {}
    check_tensor(_FN, "rays_o", rays_o, dtype=_FLOATS, shape=("R", 3), dims=dims)
    check_tensor(_FN, "rays_d", rays_d, dtype=rays_o.dtype, shape=("R", 3), device=rays_o.device, dims=dims)
    dtype, device = rays_o.dtype, rays_o.device
    if grid is not None:
        if not isinstance(grid, OccupancyGrid):
            raise TypeError(f"{_FN}(): grid must be a csdkit.ops.OccupancyGrid or None, "
                            f"got {type(grid).__name__}")
        if grid.device != device:
            raise ValueError(f"{_FN}(): grid is on {grid.device} but the rays are on {device} "
                             "(move it with grid.to(...))")
        if aabb is not None:
            raise ValueError(f"{_FN}(): give either grid or aabb, not both (the grid defines the box)")
        box0 = grid.aabb
        aabbs = grid.level_aabbs(dtype, device)
        binaries = grid.binaries
    else:
        if aabb is None:
            raise ValueError(f"{_FN}(): give an OccupancyGrid or an aabb to march through")
        box0 = as_aabb(_FN, aabb)
        aabbs = torch.tensor([box0], dtype=torch.float64).to(dtype=dtype, device=device)
        binaries = None
    check_int(_FN, "n_samples", n_samples, min_value=1)
    if step_size is None:
        step_size = math.sqrt(sum((box0[i + 3] - box0[i]) ** 2 for i in range(3))) / n_samples
    step = check_float(_FN, "step_size", step_size, min_value=1e-12)
    cone = check_float(_FN, "cone_angle", cone_angle, min_value=0.0)
    near, far = check_planes(_FN, near_plane, far_plane)
    if not isinstance(stratified, bool):
        raise TypeError(f"{_FN}(): stratified must be a bool, got {type(stratified).__name__}")
    n_rays = rays_o.shape[0]
    jitter = _jitter(n_rays, dtype, device, generator) if stratified else None
    rays_o, rays_d = rays_o.detach(), rays_d.detach()
    if not _native.use_native(device):
        return RaySamples(*march_rays_reference(rays_o, rays_d, binaries, aabbs, step, cone, near, far,
                                                jitter))
    return RaySamples(*_march_native(rays_o.contiguous(), rays_d.contiguous(), binaries, aabbs, step, cone,
                                     near, far, jitter))


def _march_native(rays_o, rays_d, binaries, aabbs, step, cone, near, far, jitter) -> tuple:
    mod = _native.native()
    n_rays = rays_o.shape[0]
    dev, stream = _native.device_args(rays_o)
    grid_u8 = binaries.contiguous().view(torch.uint8) if binaries is not None else None
    res = list(binaries.shape[1:]) if binaries is not None else [1, 1, 1]
    boxes = aabbs.to(torch.float64).flatten().tolist()
    args = (n_rays, _native.data_ptr(_FN, "rays_o", rays_o), _native.data_ptr(_FN, "rays_d", rays_d),
            _native.data_ptr(_FN, "jitter", jitter), _native.data_ptr(_FN, "grid", grid_u8), res, boxes,
            step, cone, near, far)
    counts = torch.empty(n_rays, dtype=torch.long, device=rays_o.device)
    mod.volrend_march_count(*args, _native.data_ptr(_FN, "counts", counts), _native.dtype_name(rays_o.dtype),
                            dev, stream)
    ends = torch.cumsum(counts, 0)
    total = int(ends[-1]) if n_rays > 0 else 0
    packed_info = torch.stack([ends - counts, counts], dim=1).contiguous()
    ray_indices = torch.empty(total, dtype=torch.long, device=rays_o.device)
    t_starts, t_ends = rays_o.new_empty(total), rays_o.new_empty(total)
    if total == 0:
        return ray_indices, t_starts, t_ends, packed_info
    mod.volrend_march_fill(*args, _native.data_ptr(_FN, "packed_info", packed_info),
                           _native.data_ptr(_FN, "ray_indices", ray_indices),
                           _native.data_ptr(_FN, "t_starts", t_starts),
                           _native.data_ptr(_FN, "t_ends", t_ends),
                           _native.dtype_name(rays_o.dtype), dev, stream)
    return ray_indices, t_starts, t_ends, packed_info
