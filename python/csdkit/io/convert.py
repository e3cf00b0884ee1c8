"""Mesh -> per-vertex arrays (UV seams split) and ``trimesh.Trimesh``: what formats that index all
attributes together need."""

from __future__ import annotations

import numpy as np

from ..geometry.mesh import Mesh

__all__ = ["split_uv_seams", "to_trimesh"]


def split_uv_seams(mesh: Mesh) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Per-vertex arrays for formats that index positions and UVs together (glTF, trimesh).

    Returns:
        ``vertices [N, 3]`` float32, ``uv [N, 2]`` float32 or None, ``faces [F, 3]`` int64 and
        ``vertex_map [N]`` int64 (the source vertex of each output vertex). Vertices on UV seams
        are duplicated; without UVs the mesh is returned unchanged.
    """
    v = mesh.vertices.detach().cpu().numpy().astype(np.float32)
    f = mesh.faces.cpu().numpy()
    if mesh.uv is None:
        return v, None, f, np.arange(len(v), dtype=np.int64)
    fuv = mesh.face_uv.cpu().numpy()
    pairs = np.stack([f.reshape(-1), fuv.reshape(-1)], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    uv = mesh.uv.detach().cpu().numpy().astype(np.float32)
    return v[uniq[:, 0]], uv[uniq[:, 1]], inverse.reshape(-1, 3).astype(np.int64), uniq[:, 0].astype(np.int64)


def to_trimesh(mesh: Mesh):
    """A ``trimesh.Trimesh`` with the mesh's UVs + texture (``SimpleMaterial``) or vertex colours."""
    import trimesh
    from PIL import Image

    v, uv, f, vmap = split_uv_seams(mesh)
    tm = trimesh.Trimesh(vertices=v, faces=f, process=False)
    if mesh.uv is not None:
        image = None
        if mesh.texture is not None:
            arr = (mesh.texture.detach().clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
            image = Image.fromarray(arr)
        material = trimesh.visual.material.SimpleMaterial(image=image)
        tm.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    elif mesh.vertex_colors is not None:
        vc = mesh.vertex_colors.detach().clamp(0, 1).cpu().numpy()[vmap]
        tm.visual = trimesh.visual.ColorVisuals(tm, vertex_colors=(vc * 255 + 0.5).astype(np.uint8))
    return tm
