"""Pure-PyTorch twins of every csdkit kernel: the executable specification.

Each function here computes exactly what the matching op in :mod:`csdkit.ops` computes, with plain
differentiable PyTorch (autograd gives the gradients). Tests compare the kernels against these.
"""

from .hash_grid import hash_grid_encode_reference

__all__ = ["hash_grid_encode_reference"]

# ---- volume rendering
from .compositing import (  # noqa: E402
    accumulate_along_rays_reference,
    render_weight_from_alpha_reference,
    render_weight_from_density_reference,
)
from .ray_aabb import ray_aabb_intersect_reference  # noqa: E402
from .ray_marching import march_rays_reference, occupancy_lookup_reference  # noqa: E402

__all__ += [
    "accumulate_along_rays_reference",
    "march_rays_reference",
    "occupancy_lookup_reference",
    "ray_aabb_intersect_reference",
    "render_weight_from_alpha_reference",
    "render_weight_from_density_reference",
]
