"""UV atlases (xatlas, isolated in a subprocess), baking, seam dilation, learnable texture fields and
:class:`TexturedMesh` (a mesh with a UV atlas and a learnable texture).

Layer 3: imports ``geometry``, ``io``, ``nn`` and ``ops``; renderers live above it (:mod:`csdkit.render`).
"""

from .bake import UVRaster, bake_vertex_colors, rasterize_uv, transfer_texture
from .dilation import dilate_texture
from .texture_field import PARAMETRIZATIONS, HashGridTexture, make_texture_field
from .textured_mesh import TexturedMesh
from .uv_unwrap import UnwrapError, per_triangle_atlas, unwrap_uv

__all__ = ["PARAMETRIZATIONS", "HashGridTexture", "TexturedMesh", "UVRaster", "UnwrapError", "bake_vertex_colors",
           "dilate_texture", "make_texture_field", "per_triangle_atlas", "rasterize_uv", "transfer_texture",
           "unwrap_uv"]
