"""Every mesh format in and out.

* :func:`load_mesh`: OBJ (+ MTL + images), GLB/glTF 2.0 (Draco-compressed primitives decoded,
  ``KHR_texture_transform`` on the base colour applied), PLY, STL, OFF -> :class:`csdkit.Mesh`.
  Files this reader cannot honour (glTF 1.0, an unknown required extension) raise
  :class:`MeshFormatError`, which names the version or extension.
* :func:`save_mesh`: GLB (PBR ``baseColorTexture``), OBJ + MTL + PNG, PLY, STL, OFF by suffix.

Layer 2 (beside :mod:`csdkit.geometry`, above it): imports ``geometry`` and ``ops`` only.
``Mesh.load`` / ``Mesh.save`` call these functions through :func:`csdkit.geometry.mesh.register_mesh_io`.
"""

from ..geometry.mesh import register_mesh_io
from .colors import linear_to_srgb, srgb_to_linear
from .convert import split_uv_seams, to_trimesh
from .export import EXPORT_FORMATS, export_mesh, glb_bytes, save_glb, save_obj
from .gltf import MeshFormatError
from .load import SUPPORTED_FORMATS, from_trimesh, load_mesh

#: Write ``mesh`` in the format of the path's suffix (same as :func:`export_mesh`).
save_mesh = export_mesh

register_mesh_io(load_mesh=load_mesh, save_mesh=save_mesh, from_trimesh=from_trimesh, to_trimesh=to_trimesh)

__all__ = ["EXPORT_FORMATS", "SUPPORTED_FORMATS", "MeshFormatError", "export_mesh", "from_trimesh", "glb_bytes",
           "linear_to_srgb", "load_mesh", "save_glb", "save_mesh", "save_obj", "split_uv_seams", "srgb_to_linear",
           "to_trimesh"]
