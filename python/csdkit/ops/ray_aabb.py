"""Ray / axis-aligned-box intersection."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .. import _native
from ._checks import check_float, check_tensor
from .reference.ray_aabb import ray_aabb_intersect_reference

__all__ = ["as_aabb", "check_planes", "ray_aabb_intersect"]

_FLOATS = (torch.float32, torch.float64)


def as_aabb(fn: str, aabb, name: str = "aabb") -> tuple[float, float, float, float, float, float]:
    """``(xmin, ymin, zmin, xmax, ymax, zmax)`` from a tensor ``[6]``, a sequence of 6 numbers, or a
    number ``r`` (the cube ``[-r, r]^3``); raises if the box is empty or not finite."""
    if isinstance(aabb, torch.Tensor):
        if aabb.shape != (6,) or not aabb.is_floating_point():
            raise ValueError(f"{fn}(): {name} must be a float tensor [6] "
                             "(xmin, ymin, zmin, xmax, ymax, zmax), "
                             f"got {aabb.dtype} {list(aabb.shape)}")
        box = tuple(float(v) for v in aabb.detach().cpu().tolist())
    elif isinstance(aabb, (int, float)) and not isinstance(aabb, bool):
        r = check_float(fn, name, aabb, min_value=0.0)
        box = (-r, -r, -r, r, r, r)
    elif isinstance(aabb, Sequence) and len(aabb) == 6:
        box = tuple(check_float(fn, f"{name}[{i}]", v) for i, v in enumerate(aabb))
    else:
        raise TypeError(f"{fn}(): {name} must be a radius, 6 numbers or a tensor [6] "
                        f"(xmin, ymin, zmin, xmax, ymax, zmax), got {type(aabb).__name__} {aabb!r}")
    if not all(math.isfinite(v) for v in box) or not all(box[i] < box[i + 3] for i in range(3)):
        raise ValueError(f"{fn}(): {name} must be finite with min < max on every axis, got {box}")
    return box  # type: ignore[return-value]


def check_planes(fn: str, near_plane, far_plane) -> tuple[float, float]:
    """Validate the clip distances: ``near_plane`` finite, ``far_plane`` finite or ``inf``."""
    near = check_float(fn, "near_plane", near_plane)
    far = math.inf if far_plane == math.inf else check_float(fn, "far_plane", far_plane)
    return near, far


def ray_aabb_intersect(
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    aabb: torch.Tensor | Sequence[float] | float,
    *,
    near_plane: float = 0.0,
    far_plane: float = math.inf,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intersect rays ``o + t d`` with an axis-aligned box (slab test).

    Args:
        rays_o: ``[R, 3]`` float32 or float64 ray origins, CPU or CUDA.
        rays_d: ``[R, 3]`` ray directions, same dtype and device (need not be unit length; ``t`` is
            in units of ``|d|``; a zero component is handled exactly).
        aabb: the box ``(xmin, ymin, zmin, xmax, ymax, zmax)`` as a tensor ``[6]`` or 6 numbers, or
            a radius ``r`` for the cube ``[-r, r]^3``.
        near_plane, far_plane: the returned interval is clipped to ``[near_plane, far_plane]``.

    Returns:
        ``(t_near [R], t_far [R], hit [R] bool)``; ``t_near``/``t_far`` have rays' dtype and device.
        ``hit = t_near < t_far``; rays that miss get ``t_near = t_far = 0``. Not differentiable.
    """
    fn = "ray_aabb_intersect"
    dims: dict[str, int] = {}
    check_tensor(fn, "rays_o", rays_o, dtype=_FLOATS, shape=("R", 3), dims=dims)
    check_tensor(fn, "rays_d", rays_d, dtype=rays_o.dtype, shape=("R", 3), device=rays_o.device, dims=dims)
    box = as_aabb(fn, aabb)
    near, far = check_planes(fn, near_plane, far_plane)
    rays_o, rays_d = rays_o.detach(), rays_d.detach()
    if not _native.use_native(rays_o.device):
        box_t = torch.tensor(box, dtype=torch.float64, device=rays_o.device)
        return ray_aabb_intersect_reference(rays_o, rays_d, box_t, near, far)
    rays_o, rays_d = rays_o.contiguous(), rays_d.contiguous()
    n = rays_o.shape[0]
    t_near, t_far = rays_o.new_empty(n), rays_o.new_empty(n)
    hit = torch.empty(n, dtype=torch.bool, device=rays_o.device)
    device, stream = _native.device_args(rays_o)
    _native.native().volrend_ray_aabb(
        n, _native.data_ptr(fn, "rays_o", rays_o), _native.data_ptr(fn, "rays_d", rays_d), list(box),
        near, far,
        _native.data_ptr(fn, "t_near", t_near), _native.data_ptr(fn, "t_far", t_far),
        _native.data_ptr(fn, "hit", hit), _native.dtype_name(rays_o.dtype), device, stream,
    )
    return t_near, t_far, hit
