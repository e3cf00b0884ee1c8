"""UV atlases (xatlas, isolated in a subprocess), seam dilation, baking and textured export."""

from .bake import UVRaster, bake_vertex_colors, rasterize_uv, transfer_texture
from .dilation import dilate_texture
from .export import export_mesh, save_glb, save_obj
from .uv_unwrap import UnwrapError, per_triangle_atlas, unwrap_uv

__all__ = ["UVRaster", "UnwrapError", "bake_vertex_colors", "dilate_texture", "export_mesh",
           "per_triangle_atlas", "rasterize_uv", "save_glb", "save_obj", "transfer_texture", "unwrap_uv"]
