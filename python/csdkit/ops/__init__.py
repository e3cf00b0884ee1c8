"""Differentiable kernels (CPU and CUDA) with pure-PyTorch references in :mod:`csdkit.ops.reference`."""

from .hash_grid import hash_grid_encode
from .hash_grid_config import HashGridConfig
from .interpolate import interpolate
from .rasterize import rasterize
from .texture import build_mipmaps, texture

__all__ = ["HashGridConfig", "build_mipmaps", "hash_grid_encode", "interpolate", "rasterize", "texture"]
