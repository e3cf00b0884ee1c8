"""Pure-PyTorch twins of every csdkit kernel: the executable specification.

Each function here computes exactly what the matching op in :mod:`csdkit.ops` computes, with plain
differentiable PyTorch (autograd gives the gradients). Tests compare the kernels against these.
"""

from .compositing import (
    accumulate_along_rays_reference,
    render_weight_from_alpha_reference,
    render_weight_from_density_reference,
)
from .hash_grid import hash_grid_encode_reference
from .interpolate import interpolate_reference
from .marching_tetrahedra import marching_tetrahedra_reference
from .rasterize import rasterize_reference
from .ray_aabb import ray_aabb_intersect_reference
from .ray_marching import march_rays_reference, occupancy_lookup_reference
from .texture import texture_reference

__all__ = [
    "accumulate_along_rays_reference",
    "hash_grid_encode_reference",
    "interpolate_reference",
    "march_rays_reference",
    "marching_tetrahedra_reference",
    "occupancy_lookup_reference",
    "ray_aabb_intersect_reference",
    "rasterize_reference",
    "render_weight_from_alpha_reference",
    "render_weight_from_density_reference",
    "texture_reference",
]
