"""Where an edit may change the asset: an axis-aligned box, a set of faces, or a UV mask image.

A :class:`Region` is given in the **input asset's own coordinates** (the box) or in its own
indexing (face indices, texels of its texture), never in csdkit's normalized frame, so that a user
can read the numbers off their DCC tool. It resolves to

* a texel mask ``[H, W]`` bool for appearance edits (:meth:`Region.texel_mask`): the texels the
  optimization may change; every other texel of the result is the input's texel, bit for bit;
* a point mask for shape edits (:meth:`Region.contains`): the density / albedo of an implicit
  volume is the original's outside the box.

Forms (also what ``csdkit edit --region`` accepts, :func:`parse_region`):

* ``box:XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX``: texels whose surface point lies inside the box;
* a text file of face indices (``.txt``/``.csv``/``.json``; whitespace, comma or JSON list
  separated, 0-based): texels covered by those faces;
* an image (``.png``/``.jpg``...) the size of the input's texture: texels whose mask value is
  above one half (grey or the first channel; alpha ignored).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..geometry.mesh import Mesh
from ..uv.bake import UVRaster

_FN = "Region"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FACE_SUFFIXES = (".txt", ".csv", ".json", ".npy")
#: Gutter texels (covered by no chart) within this many texels of an editable chart texel are
#: editable too, so bilinear / mipmapped sampling at the region's chart borders reads edited colours.
GUTTER_TEXELS = 2


class Region:
    """A restriction of an edit; build with :meth:`box`, :meth:`faces`, :meth:`uv_mask` or :func:`parse_region`.

    Attributes:
        kind: ``"box"``, ``"faces"`` or ``"uv_mask"``.
        bounds: ``[6]`` float64 ``(xmin, ymin, zmin, xmax, ymax, zmax)`` for a box, else None.
        face_ids: ``[K]`` int64 face indices for a face selection, else None.
        mask: ``[H, W]`` bool texel mask for a UV mask, else None.
        source: where it came from (for configs and messages).
    """

    def __init__(self, kind: str, *, bounds: torch.Tensor | None = None, face_ids: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None, source: str = "") -> None:
        self.kind = kind
        self.bounds = bounds
        self.face_ids = face_ids
        self.mask = mask
        self.source = source

    # ---- constructors ---------------------------------------------------------------------------
    @classmethod
    def box(cls, lo, hi=None) -> Region:
        """An axis-aligned box: ``box((xmin, ymin, zmin), (xmax, ymax, zmax))`` or ``box([6 numbers])``."""
        values = list(lo) if hi is None else list(lo) + list(hi)
        if len(values) != 6:
            raise ValueError(f"{_FN}.box(): needs 6 numbers XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX, got {len(values)}: "
                             f"{values!r}")
        try:
            b = [float(v) for v in values]
        except (TypeError, ValueError):
            raise ValueError(f"{_FN}.box(): the 6 bounds must be numbers, got {values!r}") from None
        if not all(math.isfinite(v) for v in b):
            raise ValueError(f"{_FN}.box(): the bounds must be finite, got {b}")
        for axis, (a, z) in enumerate(zip(b[:3], b[3:], strict=True)):
            if not a < z:
                raise ValueError(f"{_FN}.box(): min must be < max on every axis, got {'xyz'[axis]} "
                                 f"min {a:g} >= max {z:g}")
        return cls("box", bounds=torch.tensor(b, dtype=torch.float64),
                   source="box:" + ",".join(f"{v:g}" for v in b))

    @classmethod
    def faces(cls, indices, source: str = "") -> Region:
        """A face selection: 0-based indices into the input mesh's faces."""
        if isinstance(indices, torch.Tensor):
            idx = indices.detach().cpu().reshape(-1)
        else:
            idx = torch.as_tensor(np.array(indices)).reshape(-1)
        if idx.numel() == 0:
            raise ValueError(f"{_FN}.faces(): the face selection {source or ''} is empty".replace("  ", " "))
        if idx.is_floating_point():
            if not torch.equal(idx, idx.round()):
                raise ValueError(f"{_FN}.faces(): face indices must be integers, got {idx[:5].tolist()}...")
            idx = idx.long()
        if idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
            raise TypeError(f"{_FN}.faces(): face indices must be integers, got {idx.dtype}")
        idx = idx.long()
        if int(idx.min()) < 0:
            raise ValueError(f"{_FN}.faces(): face indices must be >= 0, got {int(idx.min())}")
        return cls("faces", face_ids=torch.unique(idx), source=source or f"{idx.numel()} faces")

    @classmethod
    def uv_mask(cls, mask, source: str = "") -> Region:
        """A texel mask ``[H, W]`` (bool, or numbers: > 0.5 is inside) the size of the input's texture."""
        m = mask.detach().cpu().clone() if isinstance(mask, torch.Tensor) else torch.as_tensor(np.array(mask))
        if m.dim() == 3:
            m = m[..., 0]
        if m.dim() != 2:
            raise ValueError(f"{_FN}.uv_mask(): mask must be [H, W] (or an image), got shape {list(m.shape)}")
        if m.dtype != torch.bool:
            m = m.float()
            if m.max() > 1.0:
                m = m / 255.0
            m = m > 0.5
        return cls("uv_mask", mask=m, source=source or f"uv mask {m.shape[1]}x{m.shape[0]}")

    # ---- resolution -----------------------------------------------------------------------------
    def contains(self, points: torch.Tensor) -> torch.Tensor:
        """``[N]`` bool: which of ``points [N, 3]`` (the asset's coordinates) lie in the box."""
        if self.kind != "box":
            raise ValueError(f"{_FN}.contains(): a {self.kind} region has no inside in 3-D; shape edits take "
                             "a box region")
        b = self.bounds.to(points.device, points.dtype)
        return ((points >= b[:3]) & (points <= b[3:])).all(dim=-1)

    def texel_mask(self, mesh: Mesh, raster: UVRaster, texture_shape: tuple[int, int]) -> torch.Tensor:
        """The editable texels ``[H, W]`` bool (CPU) of ``mesh``'s texture under this region.

        Args:
            mesh: the input mesh in its own coordinates (faces index it).
            raster: :func:`csdkit.texture.rasterize_uv` of ``mesh`` at ``texture_shape`` (positions in the
                mesh's coordinates).
            texture_shape: ``(H, W)`` of the input's texture.

        Raises:
            ValueError: the region holds no part of the asset (no covered texel), face indices out
                of range, or a mask of another size than the texture.
        """
        h, w = texture_shape
        covered = raster.mask.cpu()
        if self.kind == "box":
            inside = covered & self.contains(raster.position.cpu().double())
            what = f"the box {self.source[4:]}"
            if not bool(inside.any()):
                lo, hi = (t.double().cpu() for t in mesh.bounds())
                extent = ",".join(f"{v:.4g}" for v in torch.cat([lo, hi]).tolist())
                raise ValueError(f"region: {what} contains no part of the asset (its bounding box is "
                                 f"{extent}, in the input's own coordinates)")
        elif self.kind == "faces":
            n = mesh.num_faces
            if int(self.face_ids.max()) >= n:
                raise ValueError(f"region: face index {int(self.face_ids.max())} is out of range: the mesh has "
                                 f"{n} faces (indices 0..{n - 1})")
            selected = torch.zeros(n + 1, dtype=torch.bool)
            selected[self.face_ids + 1] = True
            inside = selected[raster.face_id.cpu() + 1]
            if not bool(inside.any()):
                raise ValueError(f"region: the {self.face_ids.numel()} selected faces cover no texel of the "
                                 f"{w}x{h} texture")
        else:
            if tuple(self.mask.shape) != (h, w):
                raise ValueError(f"region: the UV mask is {self.mask.shape[1]}x{self.mask.shape[0]} but the "
                                 f"texture is {w}x{h}; the mask must be the texture's size")
            if not bool((self.mask.cpu() & covered).any()):
                raise ValueError("region: the UV mask selects no texel covered by the mesh's UV charts")
            inside = self.mask.cpu().clone()  # texels painted outside every chart are the user's to change too
        return inside | (grow(inside, GUTTER_TEXELS) & ~covered)

    def to_config(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"Region({self.kind}: {self.source})"


def grow(mask: torch.Tensor, texels: int) -> torch.Tensor:
    """``mask [H, W]`` bool dilated by ``texels`` (square neighbourhood)."""
    if texels <= 0:
        return mask
    m = mask.float()[None, None]
    k = 2 * texels + 1
    return torch.nn.functional.max_pool2d(m, k, stride=1, padding=texels)[0, 0] > 0


def parse_region(spec) -> Region | None:
    """A :class:`Region` from ``None``, a Region, ``"box:x0,y0,z0,x1,y1,z1"``, a face-index file or a mask image.

    Raises:
        ValueError: a malformed box, a missing or unreadable file, an unknown file type.
    """
    if spec is None or isinstance(spec, Region):
        return spec
    if not isinstance(spec, (str, Path)):
        raise TypeError(f"region must be None, a csdkit.editing.Region, 'box:XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX' or a "
                        f"file path, got {type(spec).__name__}")
    text = str(spec)
    if text.startswith("box:") or text.startswith("box="):
        parts = [p for p in text[4:].replace(" ", "").split(",")]
        if len(parts) != 6 or any(p == "" for p in parts):
            raise ValueError(f"region: a box is box:XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX (6 numbers), got {text!r}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"region: a box is box:XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX (6 numbers), got {text!r}") \
                from None
        try:
            return Region.box(values)
        except ValueError as exc:
            raise ValueError(f"region: {text!r}: {str(exc).split(': ', 1)[-1]}") from None
    path = Path(text)
    if not path.exists():
        raise ValueError(f"region: {text!r} is neither box:XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX nor an existing file")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        from PIL import Image

        try:
            img = np.asarray(Image.open(path).convert("L"))
        except OSError as exc:
            raise ValueError(f"region: cannot read the mask image {path}: {exc}") from None
        return Region.uv_mask(img, source=str(path))
    if suffix in FACE_SUFFIXES:
        try:
            if suffix == ".npy":
                values = np.load(path)
            elif suffix == ".json":
                values = np.asarray(json.loads(path.read_text()))
            else:
                tokens = path.read_text().replace(",", " ").split()
                values = np.asarray([int(t) for t in tokens], dtype=np.int64)
        except (ValueError, OSError) as exc:
            raise ValueError(f"region: {path} must hold integer face indices: {exc}") from None
        return Region.faces(values, source=str(path))
    raise ValueError(f"region: {path} has an unknown type {suffix or '(no suffix)'}; a face-index file is "
                     f"{'/'.join(FACE_SUFFIXES)}, a UV mask image {'/'.join(IMAGE_SUFFIXES)}")
