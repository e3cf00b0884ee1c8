"""UV atlases (xatlas, isolated in a subprocess), seam dilation, baking and textured export.

Calling the package itself, ``csdkit.texture(mesh, prompt, ...)``, runs the texturing job
(:func:`csdkit.pipelines.texture`).
"""

import sys
import types

from .bake import UVRaster, bake_vertex_colors, rasterize_uv, transfer_texture
from .dilation import dilate_texture
from .export import export_mesh, save_glb, save_obj
from .uv_unwrap import UnwrapError, per_triangle_atlas, unwrap_uv

__all__ = ["UVRaster", "UnwrapError", "bake_vertex_colors", "dilate_texture", "export_mesh",
           "per_triangle_atlas", "rasterize_uv", "save_glb", "save_obj", "transfer_texture", "unwrap_uv"]


class _TexturePackage(types.ModuleType):
    """Makes ``csdkit.texture(mesh, prompt, ...)`` run the texturing job
    (:func:`csdkit.pipelines.texture`) while ``csdkit.texture.*`` stays this package of tools."""

    def __call__(self, *args, **kwargs):
        from ..pipelines.texture import texture as _texture_job

        return _texture_job(*args, **kwargs)


sys.modules[__name__].__class__ = _TexturePackage
