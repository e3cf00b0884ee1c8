"""Differentiable kernels (CPU and CUDA) with pure-PyTorch references in :mod:`csdkit.ops.reference`."""

from .hash_grid import hash_grid_encode
from .hash_grid_config import HashGridConfig

__all__ = ["HashGridConfig", "hash_grid_encode"]
