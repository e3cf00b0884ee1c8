"""Loading meshes through trimesh, and converting between :class:`Mesh` and ``trimesh.Trimesh``.

What :func:`load_mesh` does with a file:

* Scenes (GLB/GLTF node trees, OBJ groups split by material) are **concatenated with their node
  transforms applied**; polygons are triangulated by trimesh (fans).
* Vertices that trimesh split at UV seams (or STL's triangle soup) are **welded** when their
  positions are exactly equal; UVs stay separately indexed (``Mesh.face_uv``).
* Materials: the base colour is kept. One textured material -> its image becomes
  ``Mesh.texture`` (UV tiling outside [0, 1] preserved). **Several materials are merged into one
  texture atlas**: every textured material gets a cell (tiled as often as its UVs repeat), every
  untextured one a small solid-colour cell, and the UVs are remapped into the atlas. Meshes
  without any texture keep colours as ``Mesh.vertex_colors`` (solid material colours are spread
  to their vertices). One atlas keeps the rest of csdkit simple: a renderer samples one texture,
  and the texturing job optimizes one image.
* glTF's ``baseColorFactor`` (linear) multiplies the texture in linear space; OBJ's ``Kd`` is
  ignored when ``map_Kd`` is present (many exporters write a grey ``Kd`` next to a texture).
  Alpha is dropped. Texture values stay sRGB-encoded; glTF vertex colours (``COLOR_0``, linear by
  the spec) are converted to sRGB like every other colour csdkit holds.
* Degenerate faces are dropped with a :class:`~csdkit.geometry.mesh.MeshWarning`.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..geometry.mesh import Mesh, MeshWarning
from ..geometry.mesh_cleanup import drop_degenerate_faces
from .colors import linear_to_srgb, srgb_to_linear
from .gltf import plain_glb

__all__ = ["SUPPORTED_FORMATS", "from_trimesh", "load_mesh"]

#: File suffixes :func:`load_mesh` reads.
SUPPORTED_FORMATS = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")
#: Albedo of parts that carry no colour at all, when merged with coloured parts.
DEFAULT_ALBEDO = 0.8
_FN = "Mesh.load()"


@dataclass
class _Part:
    """One trimesh geometry with its base colour, in world space."""
    vertices: np.ndarray  # [n, 3] float64
    faces: np.ndarray  # [m, 3] int64
    uv: np.ndarray | None  # [n, 2] per-vertex UVs
    image: np.ndarray | None  # [h, w, 3] float32 sRGB (factor applied)
    color: np.ndarray | None  # [3] float sRGB, a solid base colour
    vertex_colors: np.ndarray | None  # [n, 3] float sRGB
    name: str


def _pil_to_float(img) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _material_base_color(mat) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(image [h, w, 3] or None, solid colour [3] or None) for a trimesh material."""
    from trimesh.visual.material import MultiMaterial, PBRMaterial, SimpleMaterial

    if mat is None:
        return None, None
    if isinstance(mat, MultiMaterial):
        mats = getattr(mat, "materials", [])
        warnings.warn(f"{_FN}: a MultiMaterial with {len(mats)} materials; using the first one's base colour",
                      MeshWarning, stacklevel=4)
        return _material_base_color(mats[0] if mats else None)
    if isinstance(mat, PBRMaterial):
        factor = None if mat.baseColorFactor is None else np.asarray(mat.baseColorFactor, dtype=np.float64)
        if factor is not None and factor.max() > 1.0:  # trimesh stores uint8 RGBA
            factor = factor / 255.0
        if mat.baseColorTexture is not None:
            img = _pil_to_float(mat.baseColorTexture)
            if factor is not None and not np.allclose(factor[:3], 1.0):
                img = linear_to_srgb(srgb_to_linear(img) * factor[:3]).astype(np.float32)
            return img, None
        if factor is not None and not np.allclose(factor[:3], 1.0):  # white is glTF's default: no colour
            return None, linear_to_srgb(factor[:3])
        return None, None
    if isinstance(mat, SimpleMaterial):
        if getattr(mat, "image", None) is not None:
            img = _pil_to_float(mat.image)
            if img.shape[0] * img.shape[1] <= 16 and np.ptp(img.reshape(-1, 3), axis=0).max() == 0:
                # a uniform swatch is a solid colour; trimesh's placeholder for "UVs but no
                # material" (grey 100 swatch, diffuse 102) carries no colour at all
                placeholder = np.allclose(img[0, 0], 100 / 255.0) and np.array_equal(
                    np.asarray(getattr(mat, "diffuse", []))[:3], [102, 102, 102])
                return None, (None if placeholder else img[0, 0].astype(np.float64))
            return img, None
        if getattr(mat, "diffuse", None) is not None:
            return None, np.asarray(mat.diffuse, dtype=np.float64)[:3] / 255.0
        return None, None
    main = getattr(mat, "main_color", None)
    return None, (None if main is None else np.asarray(main, dtype=np.float64)[:3] / 255.0)


def _colors_to_float(c, n: int, linear: bool) -> np.ndarray | None:
    c = np.asarray(c)
    if c.ndim != 2 or len(c) != n or c.shape[1] < 3:
        return None
    if np.issubdtype(c.dtype, np.integer):
        c = c.astype(np.float64) / float(np.iinfo(c.dtype).max)
    c = np.clip(c[:, :3].astype(np.float64), 0.0, 1.0)
    return linear_to_srgb(c) if linear else c


def _part_from_trimesh(g, transform: np.ndarray, name: str, colors_linear: bool) -> _Part:
    from trimesh.visual import TextureVisuals

    v = np.asarray(g.vertices, dtype=np.float64) @ transform[:3, :3].T + transform[:3, 3]
    f = np.asarray(g.faces, dtype=np.int64).reshape(-1, 3)
    if np.linalg.det(transform[:3, :3]) < 0:  # a mirroring node transform: keep faces outward
        f = f[:, [0, 2, 1]]
    uv = image = color = vcol = None
    vis = getattr(g, "visual", None)
    if isinstance(vis, TextureVisuals):
        if vis.uv is not None and len(vis.uv) == len(v):
            uv = np.asarray(vis.uv, dtype=np.float64)[:, :2]
        image, color = _material_base_color(vis.material)
        if image is not None and uv is None:  # a texture nobody can sample: use its mean colour
            color, image = image.reshape(-1, 3).mean(axis=0), None
        if image is None and "color" in getattr(vis, "vertex_attributes", {}):  # glTF COLOR_0 + material
            vcol = _colors_to_float(vis.vertex_attributes["color"], len(v), colors_linear)
    elif vis is not None and getattr(vis, "kind", None) in ("vertex", "face"):
        vcol = _colors_to_float(vis.vertex_colors, len(v), colors_linear)
    return _Part(v, f, uv, image, color, vcol, name)


# ---- texture atlas for several materials -------------------------------------------------------
def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
    out = torch.nn.functional.interpolate(t, size=(h, w), mode="bilinear", align_corners=False,
                                          antialias=True)
    return out[0].permute(1, 2, 0).clamp(0, 1).numpy()


def _shelf_pack(sizes: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], int, int]:
    """Place rectangles ``(h, w)`` on shelves; returns each one's top-left ``(y, x)`` and the atlas size."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i][0])
    area = sum(h * w for h, w in sizes)
    width = max(max(w for _, w in sizes), int(math.ceil(math.sqrt(area))))
    pos: list[tuple[int, int]] = [(0, 0)] * len(sizes)
    x = y = shelf_h = 0
    for i in order:
        h, w = sizes[i]
        if x + w > width:
            y, x, shelf_h = y + shelf_h, 0, 0
        pos[i] = (y, x)
        x += w
        shelf_h = max(shelf_h, h)
    return pos, y + shelf_h, width


def _build_atlas(parts: list[_Part], max_size: int, pad: int = 4) -> tuple[np.ndarray, list[np.ndarray]]:
    """Merge the parts' base colours into one atlas; returns (atlas [H, W, 3], per-part UVs [n_i, 2])."""
    cells: list[np.ndarray] = []  # cell contents, unpadded
    keys: dict = {}
    layout = []  # per part: (cell index, fu, fv, tx, ty) or (cell index, None, ...) for solid colours
    for p in parts:
        if p.image is not None:
            lo = np.floor(p.uv.min(axis=0) + 1e-6)
            tiles = np.maximum(1, np.ceil(p.uv.max(axis=0) - lo - 1e-4)).astype(int)
            tx, ty = int(tiles[0]), int(tiles[1])
            if tx * ty > 64:
                warnings.warn(f"{_FN}: part {p.name!r} repeats its texture {tx}x{ty} times; merged into "
                              "the atlas at reduced resolution", MeshWarning, stacklevel=4)
            key = (hashlib.sha1(p.image.tobytes()).hexdigest(), p.image.shape, tx, ty)
            if key not in keys:
                img = np.tile(p.image, (ty, tx, 1)) if tx * ty > 1 else p.image
                if max(img.shape[:2]) > max_size:
                    s = max_size / max(img.shape[:2])
                    img = _resize(img, max(1, round(img.shape[0] * s)), max(1, round(img.shape[1] * s)))
                keys[key] = len(cells)
                cells.append(img)
            layout.append((keys[key], lo[0], lo[1], tx, ty))
        else:
            if p.vertex_colors is not None:
                warnings.warn(f"{_FN}: vertex colours of part {p.name!r} are approximated by their mean "
                              "when merged into the texture atlas with textured parts", MeshWarning,
                              stacklevel=4)
                c = p.vertex_colors.mean(axis=0)
            else:
                c = p.color if p.color is not None else np.full(3, DEFAULT_ALBEDO)
            key = ("solid", tuple(np.round(c, 6)))
            if key not in keys:
                keys[key] = len(cells)
                cells.append(np.broadcast_to(np.asarray(c, np.float32), (4, 4, 3)).copy())
            layout.append((keys[key], None, None, 1, 1))

    scale = 1.0
    for _ in range(8):  # shrink until the padded layout fits in max_size
        sizes = [(max(1, round(c.shape[0] * scale)) + 2 * pad, max(1, round(c.shape[1] * scale)) + 2 * pad)
                 for c in cells]
        pos, height, width = _shelf_pack(sizes)
        if max(height, width) <= max_size:
            break
        scale *= 0.95 * max_size / max(height, width)
    atlas = np.zeros((height, width, 3), dtype=np.float32)
    for c, (y, x), (h, w) in zip(cells, pos, sizes, strict=True):
        ch, cw = h - 2 * pad, w - 2 * pad
        img = c if (ch, cw) == c.shape[:2] else _resize(c, ch, cw)
        atlas[y:y + h, x:x + w] = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="edge")

    uvs = []
    for p, (ci, fu, fv, tx, ty) in zip(parts, layout, strict=True):
        (y, x), (h, w) = pos[ci], sizes[ci]
        ch, cw = h - 2 * pad, w - 2 * pad
        if fu is None:  # solid colour: every vertex samples the cell centre
            centre = np.array([(x + w / 2) / width, 1.0 - (y + h / 2) / height])
            uvs.append(np.broadcast_to(centre, (len(p.vertices), 2)).copy())
            continue
        ul = (p.uv[:, 0] - fu) / tx
        vl = (p.uv[:, 1] - fv) / ty
        uvs.append(np.stack([(x + pad + ul * cw) / width, 1.0 - (y + pad + (1.0 - vl) * ch) / height],
                            axis=1))
    return atlas, uvs


# ---- parts -> Mesh -------------------------------------------------------------------------------
def _combine(parts: list[_Part], max_atlas_size: int, device) -> Mesh:
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts])
    vertices = np.concatenate([p.vertices for p in parts])
    faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets[:-1], strict=True)])
    uv = texture = vcol = None
    textured = [p.image is not None for p in parts]
    all_uv = all(p.uv is not None for p in parts)
    if any(textured):
        hashes = {hashlib.sha1(p.image.tobytes()).hexdigest() for p in parts if p.image is not None}
        if all(textured) and len(hashes) == 1:
            texture, uv = parts[0].image, np.concatenate([p.uv for p in parts])
        else:
            texture, part_uvs = _build_atlas(parts, max_atlas_size)
            uv = np.concatenate(part_uvs)
    else:
        if any(p.vertex_colors is not None or p.color is not None for p in parts):
            vcol = np.concatenate([
                p.vertex_colors if p.vertex_colors is not None
                else np.broadcast_to(p.color if p.color is not None else np.full(3, DEFAULT_ALBEDO),
                                     (len(p.vertices), 3))
                for p in parts])
        if all_uv:
            uv = np.concatenate([p.uv for p in parts])

    # Weld exactly coincident positions (trimesh splits vertices at UV seams; STL is a triangle soup).
    uniq, first, inverse = np.unique(vertices, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    welded_faces = rank[inverse.reshape(-1)][faces]
    face_uv = None
    if uv is not None:
        uv_u, uv_inv = np.unique(uv, axis=0, return_inverse=True)
        uv, face_uv = uv_u, uv_inv.reshape(-1)[faces]
    if vcol is not None:
        vcol = vcol[first[order]]

    def t(a, dtype):
        return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

    mesh = Mesh(t(uniq[order], torch.float32), t(welded_faces, torch.int64), uv=t(uv, torch.float32),
                face_uv=t(face_uv, torch.int64), vertex_colors=t(vcol, torch.float32),
                texture=t(texture, torch.float32), validate=True)
    return drop_degenerate_faces(mesh, fn=_FN)


def _geometries(obj) -> list[tuple[object, np.ndarray, str]]:
    """(geometry, 4x4 world transform, name) for every instance in a scene (or the object itself).

    Walks the scene graph directly (``Scene.dump`` copies visuals and loses glTF vertex colours).
    """
    import trimesh

    if not isinstance(obj, trimesh.Scene):
        return [(obj, np.eye(4), "mesh")]
    out = []
    for node in obj.graph.nodes_geometry:
        transform, geom_name = obj.graph[node]
        if geom_name in obj.geometry:
            out.append((obj.geometry[geom_name], np.asarray(transform, dtype=np.float64), str(node)))
    return out


def from_trimesh(obj, *, max_atlas_size: int = 4096, device: torch.device | str = "cpu",
                 source: str = "trimesh object", colors_linear: bool = False) -> Mesh:
    """Convert a ``trimesh.Trimesh`` or ``trimesh.Scene`` to a :class:`Mesh` (see the module doc).

    ``colors_linear``: the vertex colours are linear (glTF ``COLOR_0``) and are converted to sRGB.

    Raises:
        ValueError: nothing with faces in ``obj``, NaN/Inf vertices, bad indices.
    """
    import trimesh

    geoms = _geometries(obj)
    meshes = [(g, m, n) for g, m, n in geoms if isinstance(g, trimesh.Trimesh) and len(g.faces) > 0]
    if not meshes:
        kinds = sorted({type(g).__name__ for g, _, _ in geoms}) or ["nothing"]
        raise ValueError(f"{_FN}: {source} holds no faces (found {', '.join(kinds)}); csdkit needs a "
                         "triangle mesh, not points or lines")
    parts = [_part_from_trimesh(g, m, n, colors_linear) for g, m, n in meshes]
    for p in parts:
        if not np.isfinite(p.vertices).all():
            n_bad = int((~np.isfinite(p.vertices).all(axis=1)).sum())
            raise ValueError(f"{_FN}: {source} has NaN or Inf vertex coordinates ({n_bad} vertices in part "
                             f"{p.name!r})")
        if p.faces.size and (p.faces.min() < 0 or p.faces.max() >= len(p.vertices)):
            raise ValueError(f"{_FN}: {source} has face indices out of range [0, {len(p.vertices)}) in part "
                             f"{p.name!r} (got [{p.faces.min()}, {p.faces.max()}])")
    return _combine(parts, max_atlas_size, torch.device(device))


def load_mesh(path: str | Path, *, max_atlas_size: int = 4096, device: torch.device | str = "cpu") -> Mesh:
    """Load a mesh file into a :class:`Mesh`.

    Args:
        path: ``.obj`` (+ ``.mtl`` and images next to it), ``.glb``, ``.gltf``, ``.ply``, ``.stl``, ``.off``.
        max_atlas_size: largest side of the texture atlas built when several materials are merged.
        device: where the mesh's tensors go.

    Returns:
        ``Mesh`` with ``vertices [V, 3]`` float32, ``faces [F, 3]`` int64 and, when the file has
        them, ``uv``/``face_uv``, ``texture [H, W, 3]`` float32 or ``vertex_colors [V, 3]``.

    Raises:
        FileNotFoundError: no such file.
        MeshFormatError: (a ValueError) glTF 1.0, a required glTF extension csdkit cannot decode
            (named), Draco data without DracoPy installed, a corrupt GLB container.
        ValueError: unsupported suffix (names the supported ones), empty or unreadable file, no
            faces, NaN/Inf vertices, face indices out of range, only degenerate faces.
    """
    import trimesh

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_FORMATS:
        raise ValueError(f"{_FN}: unsupported mesh format {path.suffix or '(no suffix)'!r} for {path}; "
                         f"supported: {', '.join(SUPPORTED_FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"{_FN}: no such file: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{_FN}: {path} is empty (0 bytes)")
    plain = plain_glb(path) if suffix in (".glb", ".gltf") else None  # raises MeshFormatError
    try:
        if plain is not None:
            obj = trimesh.load(io.BytesIO(plain), file_type="glb", force="scene", process=False)
        else:
            obj = trimesh.load(str(path), file_type=suffix[1:], force="scene", process=False)
    except Exception as exc:  # trimesh raises many types for malformed files
        raise ValueError(f"{_FN}: could not read {path} as {suffix[1:].upper()}: "
                         f"{type(exc).__name__}: {exc}") from exc
    return from_trimesh(obj, max_atlas_size=max_atlas_size, device=device, source=str(path),
                        colors_linear=suffix in (".glb", ".gltf"))
