"""Differentiable kernels (CPU and CUDA) with pure-PyTorch references in :mod:`csdkit.ops.reference`."""

from .hash_grid import hash_grid_encode
from .hash_grid_config import HashGridConfig

__all__ = ["HashGridConfig", "hash_grid_encode"]

# ---- volume rendering
from .compositing import accumulate_along_rays, render_weight_from_alpha, render_weight_from_density  # noqa: E402
from .occupancy_grid import OccupancyGrid  # noqa: E402
from .ray_aabb import ray_aabb_intersect  # noqa: E402
from .ray_marching import RaySamples, march_rays  # noqa: E402

__all__ += [
    "OccupancyGrid",
    "RaySamples",
    "accumulate_along_rays",
    "march_rays",
    "ray_aabb_intersect",
    "render_weight_from_alpha",
    "render_weight_from_density",
]
