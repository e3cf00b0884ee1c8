"""Pure-PyTorch twins of every csdkit kernel: the executable specification.

Each function here computes exactly what the matching op in :mod:`csdkit.ops` computes, with plain
differentiable PyTorch (autograd gives the gradients). Tests compare the kernels against these.
"""

from .hash_grid import hash_grid_encode_reference
from .interpolate import interpolate_reference
from .rasterize import rasterize_reference
from .texture import texture_reference

__all__ = [
    "hash_grid_encode_reference",
    "interpolate_reference",
    "rasterize_reference",
    "texture_reference",
]
