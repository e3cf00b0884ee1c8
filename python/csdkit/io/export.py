"""Writing meshes: GLB (PBR ``baseColorTexture``), OBJ + MTL + PNG, and geometry-only PLY/STL/OFF.

The two textured writers are csdkit's own (no trimesh round trip), so the conventions are visible:

* **GLB** (glTF 2.0 binary): one mesh, one primitive, one material with
  ``pbrMetallicRoughness.baseColorTexture`` = the texture as PNG, ``metallicFactor 0`` and
  ``roughnessFactor 1`` (a matte albedo, not the glTF default metal), double sided. glTF's UV
  origin is the **top-left** of the image, csdkit's the bottom-left, so ``TEXCOORD_0 = (u, 1 - v)``.
  Vertices on UV seams are duplicated (glTF indexes all attributes together). Vertex colours go to
  ``COLOR_0`` converted to linear, as the spec requires. Smooth vertex normals are written.
* **OBJ**: ``v``/``vt``/``f v/vt`` keep positions and UVs separately indexed (no seam splitting),
  ``mtllib`` -> ``<stem>.mtl`` with ``map_Kd <stem>.png`` next to it. Vertex colours without a
  texture are written as the common ``v x y z r g b`` extension.
* PLY/STL/OFF carry no texture: written through trimesh with a warning when one is dropped.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from ..geometry.mesh import Mesh, MeshWarning
from .colors import srgb_to_linear
from .convert import split_uv_seams, to_trimesh
from .gltf import pack_glb

__all__ = ["EXPORT_FORMATS", "export_mesh", "glb_bytes", "save_glb", "save_obj", "texture_to_uint8"]

EXPORT_FORMATS = (".glb", ".obj", ".ply", ".stl", ".off")
_FN = "export_mesh"

# glTF constants
_FLOAT, _UINT32 = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_LINEAR, _LINEAR_MIPMAP_LINEAR, _REPEAT = 9729, 9987, 10497


def texture_to_uint8(texture: torch.Tensor) -> np.ndarray:
    """``[H, W, 3]`` float texture in [0, 1] (any device) -> ``[H, W, 3]`` uint8 (clamped, rounded)."""
    return (texture.detach().float().clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def _png_bytes(texture: torch.Tensor) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(texture_to_uint8(texture)).save(buf, format="PNG")
    return buf.getvalue()


def _resolve_texture(mesh: Mesh, texture, fn: str) -> torch.Tensor | None:
    if texture is None:
        return mesh.texture
    if not isinstance(texture, torch.Tensor):
        raise TypeError(f"{fn}(): texture must be a torch.Tensor [H, W, 3], got {type(texture).__name__}")
    if texture.dim() == 4 and texture.shape[0] == 1:
        texture = texture[0]
    if texture.dim() != 3 or texture.shape[-1] != 3 or not texture.is_floating_point():
        raise ValueError(f"{fn}(): texture must be float [H, W, 3] in [0, 1], got "
                         f"{str(texture.dtype).replace('torch.', '')} {list(texture.shape)}")
    if mesh.uv is None:
        raise ValueError(f"{fn}(): a texture was given but the mesh has no UVs; run "
                         "csdkit.uv.unwrap_uv(mesh) first")
    return texture


def save_glb(mesh: Mesh, path: str | Path, *, texture: torch.Tensor | None = None) -> Path:
    """Write ``mesh`` as a binary glTF 2.0 file (see the module doc for the conventions).

    Args:
        mesh: the mesh; UVs are required for a texture.
        path: output file (``.glb``).
        texture: optional ``[H, W, 3]`` float texture in [0, 1] (any device) that replaces ``mesh.texture``.
    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    data = glb_bytes(mesh, texture=texture, fn="save_glb")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def glb_bytes(mesh: Mesh, *, texture: torch.Tensor | None = None, fn: str = "glb_bytes") -> bytes:
    """The GLB file :func:`save_glb` writes, as bytes (e.g. to embed in an HTML viewer)."""
    tex = _resolve_texture(mesh, texture, fn)
    v, uv, f, vmap = split_uv_seams(mesh)
    normals = mesh.vertex_normals().detach().cpu().numpy().astype(np.float32)[vmap]

    blob = bytearray()
    views, accessors = [], []

    def add_view(data: bytes, target: int | None) -> int:
        while len(blob) % 4:
            blob.append(0)
        view = {"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        blob.extend(data)
        views.append(view)
        return len(views) - 1

    def add_accessor(arr: np.ndarray, kind: str, component: int, target: int, minmax: bool = False) -> int:
        acc = {"bufferView": add_view(arr.tobytes(), target), "componentType": component,
               "count": int(arr.shape[0]), "type": kind}
        if minmax:
            acc["min"] = [float(x) for x in arr.min(axis=0)]
            acc["max"] = [float(x) for x in arr.max(axis=0)]
        accessors.append(acc)
        return len(accessors) - 1

    attributes = {
        "POSITION": add_accessor(np.ascontiguousarray(v, np.float32), "VEC3", _FLOAT, _ARRAY_BUFFER, True),
        "NORMAL": add_accessor(np.ascontiguousarray(normals, np.float32), "VEC3", _FLOAT, _ARRAY_BUFFER),
    }
    if uv is not None:
        gl_uv = np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1).astype(np.float32)  # glTF: origin top-left
        attributes["TEXCOORD_0"] = add_accessor(gl_uv, "VEC2", _FLOAT, _ARRAY_BUFFER)
    if tex is None and mesh.vertex_colors is not None:
        lin = srgb_to_linear(mesh.vertex_colors.detach().cpu().double().numpy()[vmap]).astype(np.float32)
        attributes["COLOR_0"] = add_accessor(lin, "VEC3", _FLOAT, _ARRAY_BUFFER)
    indices = add_accessor(np.ascontiguousarray(f, np.uint32).reshape(-1, 1), "SCALAR", _UINT32,
                           _ELEMENT_ARRAY_BUFFER)

    pbr: dict = {"baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0, "roughnessFactor": 1.0}
    gltf: dict = {"asset": {"version": "2.0", "generator": "csdkit"}}
    if tex is not None:
        image_view = add_view(_png_bytes(tex), None)
        pbr["baseColorTexture"] = {"index": 0, "texCoord": 0}
        gltf["images"] = [{"bufferView": image_view, "mimeType": "image/png"}]
        gltf["samplers"] = [{"magFilter": _LINEAR, "minFilter": _LINEAR_MIPMAP_LINEAR,
                             "wrapS": _REPEAT, "wrapT": _REPEAT}]
        gltf["textures"] = [{"sampler": 0, "source": 0}]
    while len(blob) % 4:
        blob.append(0)
    gltf.update({
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "csdkit_mesh"}],
        "meshes": [{"primitives": [{"attributes": attributes, "indices": indices, "material": 0,
                                    "mode": 4}]}],
        "materials": [{"name": "csdkit_material", "pbrMetallicRoughness": pbr, "doubleSided": True}],
        "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": len(blob)}],
    })
    return pack_glb(gltf, bytes(blob))


def save_obj(mesh: Mesh, path: str | Path, *, texture: torch.Tensor | None = None) -> Path:
    """Write ``mesh`` as OBJ; with a texture also ``<stem>.mtl`` and ``<stem>.png`` next to it.

    Args:
        mesh: the mesh.
        path: output ``.obj`` file.
        texture: optional ``[H, W, 3]`` float texture in [0, 1] that replaces ``mesh.texture``.
    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    tex = _resolve_texture(mesh, texture, "save_obj")
    path.parent.mkdir(parents=True, exist_ok=True)
    v = mesh.vertices.detach().cpu().double().numpy()
    f = mesh.faces.cpu().numpy() + 1
    lines = ["# written by csdkit"]
    if tex is not None:
        mtl, png = path.with_suffix(".mtl"), path.with_suffix(".png")
        png.write_bytes(_png_bytes(tex))
        mtl.write_text("# written by csdkit\nnewmtl csdkit_material\nKa 0 0 0\nKd 1 1 1\nKs 0 0 0\n"
                       f"d 1\nillum 1\nmap_Kd {png.name}\n")
        lines.append(f"mtllib {mtl.name}")
    if tex is None and mesh.vertex_colors is not None:
        vc = mesh.vertex_colors.detach().cpu().double().numpy().clip(0, 1)
        lines += [f"v {a:.9g} {b:.9g} {c:.9g} {r:.6f} {g:.6f} {bl:.6f}"
                  for (a, b, c), (r, g, bl) in zip(v, vc, strict=True)]
    else:
        lines += [f"v {a:.9g} {b:.9g} {c:.9g}" for a, b, c in v]
    if mesh.uv is not None:
        lines += [f"vt {a:.9g} {b:.9g}" for a, b in mesh.uv.detach().cpu().double().numpy()]
        if tex is not None:
            lines.append("usemtl csdkit_material")
        ft = mesh.face_uv.cpu().numpy() + 1
        lines += [f"f {a}/{x} {b}/{y} {c}/{z}" for (a, b, c), (x, y, z) in zip(f, ft, strict=True)]
    else:
        lines += [f"f {a} {b} {c}" for a, b, c in f]
    path.write_text("\n".join(lines) + "\n")
    return path


def export_mesh(mesh: Mesh, path: str | Path, *, texture: torch.Tensor | None = None) -> Path:
    """Write ``mesh`` to ``path``; the format comes from the suffix.

    Args:
        mesh: a :class:`~csdkit.Mesh`.
        path: ``.glb`` (textured, recommended), ``.obj`` (+ ``.mtl`` + ``.png``), or
            ``.ply``/``.stl``/``.off`` (geometry; PLY keeps vertex colours).
        texture: optional ``[H, W, 3]`` float texture in [0, 1] (e.g. an optimized texture
            parameter, any device) that replaces ``mesh.texture``; needs ``mesh.uv``.

    Returns:
        The path written.

    Raises:
        ValueError: unsupported suffix (names the supported ones), texture without UVs, bad texture shape.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".glb":
        return save_glb(mesh, path, texture=texture)
    if suffix == ".obj":
        return save_obj(mesh, path, texture=texture)
    if suffix not in EXPORT_FORMATS:
        raise ValueError(f"{_FN}(): unsupported output format {path.suffix or '(no suffix)'!r} for {path}; "
                         f"supported: {', '.join(EXPORT_FORMATS)}")
    tex = _resolve_texture(mesh, texture, _FN)
    if tex is not None:
        warnings.warn(f"{_FN}(): {suffix} files cannot hold a texture; it was not written (use .glb or .obj)",
                      MeshWarning, stacklevel=2)
    vc = None if mesh.vertex_colors is None else mesh.vertex_colors.detach()
    plain = Mesh(mesh.vertices.detach(), mesh.faces, vertex_colors=vc, validate=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_trimesh(plain).export(str(path), file_type=suffix[1:])
    return path
