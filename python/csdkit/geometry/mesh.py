"""``csdkit.Mesh``: a triangle mesh with optional UVs, vertex colours and a base-colour texture.

Conventions (the same everywhere in csdkit):

* ``vertices [V, 3]`` float32 (float64 accepted), world units; ``faces [F, 3]`` int64 indices
  into ``vertices``, counter-clockwise seen from the front (outward normals). The canonical frame
  is +Y up, +Z front (see :mod:`csdkit.render.cameras`); :meth:`Mesh.normalized` brings a mesh
  there.
* UVs are stored **separately indexed**: ``uv [Vt, 2]`` float32 and ``face_uv [F, 3]`` int64
  indices into ``uv`` (so UV seams do not split the position mesh, like OBJ's ``f v/vt``).
  A per-vertex UV array (``Vt == V``) may be given without ``face_uv``; then ``face_uv = faces``.
  UV origin is at the **bottom-left** of the texture image (OBJ / OpenGL convention: ``v = 0`` is
  the last image row); the glTF writer and reader flip ``v`` at the file boundary.
* ``texture [H, W, 3]`` float32 in [0, 1], an image with row 0 at the top, sRGB-encoded values
  as they would be displayed (what a diffusion model sees). It needs ``uv``.
* ``vertex_colors [V, 3]`` float32 in [0, 1], sRGB-encoded. Used when there is no texture.

All tensors live on one device (:meth:`Mesh.to`). A ``Mesh`` is immutable in spirit: methods
return new meshes and share unchanged tensors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..ops._checks import describe

__all__ = ["Mesh", "MeshWarning", "AXES"]

logger = logging.getLogger("csdkit.mesh")

#: Axis names accepted by :meth:`Mesh.normalized`.
AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0),
        "+z": (0, 0, 1), "-z": (0, 0, -1)}


class MeshWarning(UserWarning):
    """Something in a mesh was repaired or approximated (degenerate faces dropped, materials merged)."""


def _as_float_tensor(fn: str, name: str, value, cols: Sequence[int], device=None) -> torch.Tensor:
    """A float tensor ``[N, c]`` (c in ``cols``): numpy becomes float32, float tensors keep their dtype."""
    if isinstance(value, np.ndarray):
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise TypeError(f"{fn}: {name} must be a float array [N, {cols[0]}], got numpy {value.dtype}")
        value = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor or numpy array [N, {cols[0]}], "
                        f"got {type(value).__name__}")
    if value.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64 [N, {cols[0]}], got {describe(value)}")
    if value.dim() != 2 or value.shape[1] not in cols:
        want = " or ".join(f"[N, {c}]" for c in cols)
        raise ValueError(f"{fn}: {name} must be {want}, got {describe(value)}")
    return value if device is None else value.to(device)


def _as_index_tensor(fn: str, name: str, value, device) -> torch.Tensor:
    """An int64 tensor ``[F, 3]`` from int32/int64 numpy arrays or tensors."""
    if isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"{fn}: {name} must be an int32 or int64 array [F, 3], got numpy {value.dtype}")
        value = torch.from_numpy(np.ascontiguousarray(value, dtype=np.int64))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor or numpy array [F, 3], "
                        f"got {type(value).__name__}")
    if value.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{fn}: {name} must be int32 or int64 [F, 3], got {describe(value)}")
    if value.dim() != 2 or value.shape[1] != 3:
        raise ValueError(f"{fn}: {name} must be int32 or int64 [F, 3] (triangles), got {describe(value)}")
    return value.to(device=device, dtype=torch.int64)


def _check_indices(fn: str, name: str, idx: torch.Tensor, n: int, target: str) -> None:
    if idx.numel() == 0:
        return
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= n:
        bad = int(((idx < 0) | (idx >= n)).any(dim=1).sum())
        raise ValueError(f"{fn}: {name} index out of range: {target} has {n} entries, but {name} holds "
                         f"indices in [{lo}, {hi}] ({bad} faces affected)")


def _as_texture(fn: str, value, device) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{fn}: texture must be a torch.Tensor [H, W, 3], got {type(value).__name__}")
    if value.dim() != 3 or value.shape[-1] not in (3, 4) or value.shape[0] < 1 or value.shape[1] < 1:
        raise ValueError(f"{fn}: texture must be [H, W, 3] (or [H, W, 4], alpha dropped), "
                         f"got {describe(value)}")
    if value.dtype == torch.uint8:
        value = value.float() / 255.0
    elif value.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{fn}: texture must be float32 in [0, 1] or uint8 [H, W, 3], got {describe(value)}")
    return value[..., :3].to(device)


class Mesh:
    """A triangle mesh with optional UVs, vertex colours and a base-colour texture.

    Args:
        vertices: ``[V, 3]`` float32 (float64 kept as is; numpy arrays become float32).
        faces: ``[F, 3]`` int32 or int64 (stored as int64), indices into ``vertices``.
        uv: optional ``[Vt, 2]`` texture coordinates (origin bottom-left, see module doc).
        face_uv: optional ``[F, 3]`` int indices into ``uv``; omitted with per-vertex ``uv`` (``Vt == V``).
        vertex_colors: optional ``[V, 3]`` (or ``[V, 4]``, alpha dropped) float in [0, 1].
        texture: optional ``[H, W, 3]`` float in [0, 1] (uint8 is scaled by 1/255), row 0 at the top.
            Needs ``uv``.
        validate: check finiteness and index ranges (O(V + F); turn off only for trusted data
            in a hot loop).

    All tensors are moved to the device of ``vertices``.

    Raises:
        TypeError: wrong container type or dtype.
        ValueError: wrong shapes, NaN/Inf vertices, indices out of range, texture without UVs.
    """

    def __init__(self, vertices, faces, *, uv=None, face_uv=None, vertex_colors=None, texture=None,
                 validate: bool = True) -> None:
        fn = "Mesh()"
        self.vertices = _as_float_tensor(fn, "vertices", vertices, (3,))
        dev = self.vertices.device
        self.faces = _as_index_tensor(fn, "faces", faces, dev)
        self.uv = None if uv is None else _as_float_tensor(fn, "uv", uv, (2,), dev)
        self.face_uv = None if face_uv is None else _as_index_tensor(fn, "face_uv", face_uv, dev)
        vc = None if vertex_colors is None else _as_float_tensor(fn, "vertex_colors", vertex_colors,
                                                                 (3, 4), dev)
        self.vertex_colors = None if vc is None else vc[:, :3]
        self.texture = None if texture is None else _as_texture(fn, texture, dev)

        if self.face_uv is not None and self.uv is None:
            raise ValueError(f"{fn}: face_uv was given without uv")
        if self.uv is not None and self.face_uv is None:
            if self.uv.shape[0] != self.vertices.shape[0]:
                raise ValueError(f"{fn}: per-vertex uv must have one row per vertex "
                                 f"([{self.num_vertices}, 2]), got {describe(self.uv)}; pass "
                                 "face_uv [F, 3] for separately indexed UVs")
            self.face_uv = self.faces
        if self.face_uv is not None and self.face_uv.shape[0] != self.faces.shape[0]:
            raise ValueError(f"{fn}: face_uv must be [F, 3] with F={self.num_faces} (one row per face), "
                             f"got {describe(self.face_uv)}")
        if self.vertex_colors is not None and self.vertex_colors.shape[0] != self.vertices.shape[0]:
            raise ValueError(f"{fn}: vertex_colors must be [V, 3] with V={self.num_vertices}, "
                             f"got {describe(self.vertex_colors)}")
        if self.texture is not None and self.uv is None:
            raise ValueError(f"{fn}: a texture needs uv coordinates (pass uv=, or run "
                             "csdkit.uv.unwrap_uv(mesh) first)")
        if validate:
            self.validate()

    # ---- checks ---------------------------------------------------------------------------------
    def validate(self, fn: str = "Mesh()") -> Mesh:
        """Raise ValueError on NaN/Inf values or out-of-range indices; return ``self``."""
        if self.num_faces == 0:
            raise ValueError(f"{fn}: the mesh has no faces (vertices {list(self.vertices.shape)}); csdkit "
                             "needs a triangle mesh, not a point cloud")
        finite = torch.isfinite(self.vertices).all(dim=1)
        if not bool(finite.all()):
            bad = (~finite).nonzero()[:5, 0].tolist()
            raise ValueError(f"{fn}: vertices hold NaN or Inf values ({int((~finite).sum())} of "
                             f"{self.num_vertices} vertices, first rows {bad})")
        _check_indices(fn, "faces", self.faces, self.num_vertices, "vertices")
        if self.uv is not None:
            if not bool(torch.isfinite(self.uv).all()):
                raise ValueError(f"{fn}: uv holds NaN or Inf values")
            _check_indices(fn, "face_uv", self.face_uv, self.uv.shape[0], "uv")
        if self.vertex_colors is not None and not bool(torch.isfinite(self.vertex_colors).all()):
            raise ValueError(f"{fn}: vertex_colors hold NaN or Inf values")
        if self.texture is not None and not bool(torch.isfinite(self.texture).all()):
            raise ValueError(f"{fn}: texture holds NaN or Inf values")
        return self

    def check_face_budget(self, max_faces: int, operation: str) -> None:
        """Raise ValueError when the mesh has more than ``max_faces`` faces for ``operation``.

        The message suggests decimation (``Mesh.decimated``, or ``--decimate`` on the command line).
        """
        if self.num_faces > max_faces:
            raise ValueError(
                f"{operation}: the mesh has {self.num_faces:,} faces, more than the {max_faces:,} this "
                f"operation supports; decimate it first (mesh.decimated({max_faces}) in Python, "
                f"or --decimate {max_faces} on the command line), or raise the limit")

    # ---- basic properties -----------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def device(self) -> torch.device:
        return self.vertices.device

    @property
    def has_uv(self) -> bool:
        return self.uv is not None

    @property
    def has_texture(self) -> bool:
        return self.texture is not None

    @property
    def has_vertex_colors(self) -> bool:
        return self.vertex_colors is not None

    def _int32(self, name: str) -> torch.Tensor | None:
        """int32 copy of an index tensor, cached while the tensor object and its version are unchanged."""
        t = getattr(self, name)
        if t is None:
            return None
        cache = self.__dict__.setdefault("_int32_cache", {})
        hit = cache.get(name)
        if hit is not None and hit[0] is t and hit[1] == t._version:
            return hit[2]
        out = t.to(torch.int32).contiguous()
        cache[name] = (t, t._version, out)
        return out

    @property
    def faces_int32(self) -> torch.Tensor:
        """``[F, 3]`` int32 contiguous faces (what the rasterizer takes; cached)."""
        return self._int32("faces")

    @property
    def face_uv_int32(self) -> torch.Tensor | None:
        """``[F, 3]`` int32 contiguous UV faces (cached), or None without UVs."""
        return self._int32("face_uv")

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Axis-aligned bounding box ``(min [3], max [3])`` of the vertices."""
        return self.vertices.min(dim=0).values, self.vertices.max(dim=0).values

    def replace(self, **changes) -> Mesh:
        """A new mesh with some fields replaced (``vertices``, ``faces``, ``uv``, ``face_uv``,
        ``vertex_colors``, ``texture``); pass ``None`` to drop an optional field."""
        fields = dict(vertices=self.vertices, faces=self.faces, uv=self.uv, face_uv=self.face_uv,
                      vertex_colors=self.vertex_colors, texture=self.texture)
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Mesh.replace(): unknown field(s) {sorted(unknown)}; "
                            f"fields are {sorted(fields)}")
        if "uv" in changes and "face_uv" not in changes:
            fields["face_uv"] = None  # new UVs come with their own indexing (or are per-vertex)
        if "faces" in changes and "face_uv" not in changes and self.face_uv is self.faces:
            fields["face_uv"] = None  # per-vertex UVs follow the new faces
        fields.update(changes)
        if fields["uv"] is None:
            fields["face_uv"] = None
            fields["texture"] = None
        validate = any(k in changes for k in ("vertices", "faces", "uv", "face_uv"))
        return Mesh(**fields, validate=validate)

    def to(self, device: torch.device | str) -> Mesh:
        """The mesh with all tensors on ``device`` (``self`` when already there)."""
        device = torch.device(device)
        if self.device == device:
            return self

        def mv(t):
            return None if t is None else t.to(device)

        face_uv = None if self.face_uv is self.faces else mv(self.face_uv)
        return Mesh(mv(self.vertices), mv(self.faces), uv=mv(self.uv), face_uv=face_uv,
                    vertex_colors=mv(self.vertex_colors), texture=mv(self.texture), validate=False)

    def detach(self) -> Mesh:
        """The mesh with every tensor detached from autograd."""
        def dt(t):
            return None if t is None else t.detach()
        face_uv = None if self.face_uv is self.faces else self.face_uv
        return Mesh(dt(self.vertices), self.faces, uv=dt(self.uv), face_uv=face_uv,
                    vertex_colors=dt(self.vertex_colors), texture=dt(self.texture), validate=False)

    def __repr__(self) -> str:
        extras = []
        if self.uv is not None:
            extras.append(f"uv={self.uv.shape[0]}")
        if self.texture is not None:
            extras.append(f"texture={self.texture.shape[0]}x{self.texture.shape[1]}")
        if self.vertex_colors is not None:
            extras.append("vertex_colors")
        extra = (", " + ", ".join(extras)) if extras else ""
        return f"Mesh(vertices={self.num_vertices}, faces={self.num_faces}{extra}, device={self.device})"

    # ---- geometry -------------------------------------------------------------------------------
    def face_normals(self, unit: bool = True) -> torch.Tensor:
        """Face normals ``[F, 3]`` (unit length, or length = 2 x area with ``unit=False``); differentiable."""
        v = self.vertices[self.faces]
        n = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
        return torch.nn.functional.normalize(n, dim=-1) if unit else n

    def face_areas(self) -> torch.Tensor:
        """Face areas ``[F]``."""
        return 0.5 * self.face_normals(unit=False).norm(dim=-1)

    def vertex_normals(self) -> torch.Tensor:
        """Area-weighted unit vertex normals ``[V, 3]`` (0 for unreferenced vertices); differentiable.

        Cached while neither ``vertices`` nor ``faces`` change (and no gradient is being tracked).
        """
        key = (self.vertices, self.vertices._version, self.faces, self.faces._version)
        cached = self.__dict__.get("_normals_cache")
        if cached is not None and all(a is b if torch.is_tensor(a) else a == b
                                      for a, b in zip(cached[0], key, strict=True)):
            return cached[1]
        fn = self.face_normals(unit=False)
        acc = torch.zeros_like(self.vertices).index_add(0, self.faces.reshape(-1),
                                                        fn.repeat_interleave(3, dim=0))
        normals = torch.nn.functional.normalize(acc, dim=-1, eps=1e-20)
        if not normals.requires_grad:
            self._normals_cache = (key, normals)
        return normals

    def transformed(self, matrix) -> Mesh:
        """The mesh with vertices mapped by a ``[4, 4]`` (affine) or ``[3, 3]`` matrix (column vectors)."""
        m = torch.as_tensor(matrix, dtype=self.vertices.dtype, device=self.device)
        if m.shape == (3, 3):
            v = self.vertices @ m.T
        elif m.shape == (4, 4):
            v = self.vertices @ m[:3, :3].T + m[:3, 3]
        else:
            raise ValueError(f"Mesh.transformed(): matrix must be [4, 4] or [3, 3], got {list(m.shape)}")
        mesh = self.replace(vertices=v)
        if float(torch.linalg.det(m[:3, :3])) < 0:  # a reflection flips the winding
            mesh = mesh.replace(faces=self.faces[:, [0, 2, 1]],
                                face_uv=None if self.face_uv is None else self.face_uv[:, [0, 2, 1]])
        return mesh

    def normalization_transform(self, up: str = "+y", front: str = "+z", scale: float = 1.0) -> torch.Tensor:
        """The ``[4, 4]`` float64 matrix used by :meth:`normalized` (apply its inverse to go back)."""
        fn = "Mesh.normalized()"
        for name, axis in (("up", up), ("front", front)):
            if axis not in AXES:
                raise ValueError(f"{fn}: {name} must be one of {list(AXES)}, got {axis!r}")
        if not isinstance(scale, (int, float)) or not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"{fn}: scale must be a positive number, got {scale!r}")
        u = torch.tensor(AXES[up], dtype=torch.float64)
        f = torch.tensor(AXES[front], dtype=torch.float64)
        if float(u.dot(f)) != 0.0:
            raise ValueError(f"{fn}: up={up!r} and front={front!r} must be perpendicular axes")
        # Rows of R are the source axes that become +X, +Y, +Z: R @ up = +Y, R @ front = +Z.
        rot = torch.stack([torch.linalg.cross(u, f, dim=0), u, f])
        lo, hi = (t.detach().double().cpu() for t in self.bounds())
        centre = 0.5 * (lo + hi)
        radius = float((self.vertices.detach().double().cpu() - centre).norm(dim=1).max())
        s = scale / radius if radius > 0 else 1.0
        m = torch.eye(4, dtype=torch.float64)
        m[:3, :3] = s * rot
        m[:3, 3] = -s * (rot @ centre)
        return m

    def normalized(self, up: str = "+y", front: str = "+z", scale: float = 1.0, *, verbose: bool = True,
                   return_transform: bool = False):
        """Centre the bounding box at the origin, scale to radius ``scale``, rotate to +Y up / +Z front.

        Args:
            up: the mesh's up axis as stored in the file: ``"+y"`` (glTF, most OBJ), ``"+z"`` (CAD,
                Blender exports without axis conversion, many scans) or any of ``+x -x +y -y +z -z``.
            front: the axis the object's front faces, perpendicular to ``up``.
            scale: radius of the bounding sphere (around the bbox centre) after normalization.
            verbose: print one line saying what was assumed (also logged on ``csdkit.mesh``).
                A wrong up axis silently ruins a texturing run, so the default is to say it.
            return_transform: also return the ``[4, 4]`` float64 matrix that was applied.

        Returns:
            The normalized mesh (and the matrix with ``return_transform=True``).
        """
        m = self.normalization_transform(up, front, scale)
        mesh = self.transformed(m.to(self.vertices.dtype))
        lo, hi = (t.detach().double().cpu() for t in self.bounds())
        msg = (f"Mesh.normalized(): assumed the file's up axis is {up} and its front is {front} "
               f"(-> csdkit's +Y up, +Z front); bbox centre ({', '.join(f'{x:.4g}' for x in (lo + hi) / 2)}) "
               f"-> origin, scaled by {float(m[:3, :3].norm(dim=0)[0]):.4g} to radius {scale:g}. "
               "Pass up=/front= if the object looks sideways.")
        logger.info(msg)
        if verbose:
            print(msg)
        return (mesh, m) if return_transform else mesh

    # ---- clean-up, I/O (implemented in sibling modules) -----------------------------------------
    def cleaned(self, *, merge_vertices: bool = True, drop_degenerate: bool = True,
                drop_duplicate_faces: bool = True, drop_unreferenced: bool = True, warn: bool = True) -> Mesh:
        """Merge duplicate vertices, drop degenerate/duplicate faces and unreferenced vertices.

        Pure NumPy, always available; see :func:`csdkit.geometry.mesh_cleanup.clean_mesh`.
        """
        from .mesh_cleanup import clean_mesh

        return clean_mesh(self, merge_vertices=merge_vertices, drop_degenerate=drop_degenerate,
                          drop_duplicate_faces=drop_duplicate_faces, drop_unreferenced=drop_unreferenced,
                          warn=warn)

    def decimated(self, target_faces: int) -> Mesh:
        """Quadric-error decimation to about ``target_faces`` faces (needs ``open3d``; UVs and texture
        are dropped, vertex colours kept); see :func:`csdkit.geometry.mesh_cleanup.decimate`."""
        from .mesh_cleanup import decimate

        return decimate(self, target_faces)

    # ---- file I/O: thin conveniences over csdkit.io (which registers itself, see register_mesh_io) -----
    @classmethod
    def load(cls, path: str | Path, *, max_atlas_size: int = 4096,
             device: torch.device | str = "cpu") -> Mesh:
        """Load OBJ, GLB/GLTF (Draco too), PLY, STL or OFF (scenes concatenated, several materials merged
        into one texture atlas); see :func:`csdkit.io.load_mesh`."""
        return _mesh_io("load_mesh")(path, max_atlas_size=max_atlas_size, device=device)

    def save(self, path: str | Path, *, texture: torch.Tensor | None = None) -> Path:
        """Write GLB, OBJ (+ MTL + PNG), PLY, STL or OFF; see :func:`csdkit.io.save_mesh`."""
        return _mesh_io("save_mesh")(self, path, texture=texture)

    @classmethod
    def from_trimesh(cls, tm, **kw) -> Mesh:
        """Convert a ``trimesh.Trimesh`` or ``trimesh.Scene`` (visuals included); see :func:`csdkit.io.from_trimesh`."""
        return _mesh_io("from_trimesh")(tm, **kw)

    def to_trimesh(self):
        """A ``trimesh.Trimesh`` (geometry and vertex colours; UVs are split per vertex, texture attached)."""
        return _mesh_io("to_trimesh")(self)


# Mesh file formats live one layer up, in csdkit.io, which imports this module. So that the
# conveniences above need no upward import, csdkit.io registers its functions here when it is
# imported (``import csdkit`` always imports it).
_MESH_IO: dict[str, Callable] = {}


def register_mesh_io(**functions: Callable) -> None:
    """Called by :mod:`csdkit.io` with ``load_mesh``, ``save_mesh``, ``from_trimesh`` and ``to_trimesh``."""
    _MESH_IO.update(functions)


def _mesh_io(name: str) -> Callable:
    if name not in _MESH_IO:
        raise RuntimeError(f"Mesh: {name} is provided by csdkit.io, which is not imported; `import csdkit.io` first")
    return _MESH_IO[name]
