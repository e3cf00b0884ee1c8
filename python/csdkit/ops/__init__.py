"""Differentiable kernels (CPU and CUDA) with pure-PyTorch references in :mod:`csdkit.ops.reference`."""

from .antialias import antialias, antialias_topology
from .compositing import accumulate_along_rays, render_weight_from_alpha, render_weight_from_density
from .hash_grid import hash_grid_encode
from .hash_grid_config import HashGridConfig
from .interpolate import interpolate
from .marching_tetrahedra import marching_tetrahedra
from .occupancy_grid import OccupancyGrid
from .rasterize import rasterize
from .ray_aabb import ray_aabb_intersect
from .ray_marching import RaySamples, march_rays
from .texture import build_mipmaps, texture

__all__ = [
    "HashGridConfig",
    "OccupancyGrid",
    "RaySamples",
    "accumulate_along_rays",
    "antialias",
    "antialias_topology",
    "build_mipmaps",
    "hash_grid_encode",
    "interpolate",
    "march_rays",
    "marching_tetrahedra",
    "rasterize",
    "ray_aabb_intersect",
    "render_weight_from_alpha",
    "render_weight_from_density",
    "texture",
]
