"""Baking helpers: rasterize a mesh in UV space and move colours into (or between) UV atlases.

* :func:`rasterize_uv`: per texel, which face covers it, its barycentrics, surface position and
  normal, and the chart-coverage ``mask`` that :func:`csdkit.uv.dilate_texture` needs.
* :func:`bake_vertex_colors`: vertex colours -> a texture under the mesh's UVs.
* :func:`transfer_texture`: a texture under one UV layout -> the same surface under another
  (used by :func:`csdkit.uv.unwrap_uv` to keep a texture across re-unwrapping).

Texture images have row 0 at the top; with csdkit's UV convention (origin bottom-left) texel
``(i, j)`` has its centre at ``u = (j + 0.5) / W``, ``v = 1 - (i + 0.5) / H``. UV rasterization
samples texel centres, so faces smaller than a texel may cover none; the results are dilated
(push-pull) so such gaps and the gutters still read sensible colours.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..geometry.mesh import Mesh
from ..ops import interpolate, rasterize, texture
from ..ops._checks import check_int
from .dilation import dilate_texture

__all__ = ["UVRaster", "rasterize_uv", "bake_vertex_colors", "transfer_texture"]


@dataclass
class UVRaster:
    """What :func:`rasterize_uv` returns; all ``[H, W, ...]`` on the mesh's device, row 0 at the top.

    Attributes:
        mask: ``[H, W]`` bool, True where a face covers the texel centre.
        face_id: ``[H, W]`` int64 face index, -1 where uncovered.
        bary: ``[H, W, 3]`` barycentric weights of the face's corners (0 where uncovered).
        position: ``[H, W, 3]`` surface point (the vertices' dtype; 0 where uncovered).
        normal: ``[H, W, 3]`` unit interpolated vertex normal (0 where uncovered).
    """
    mask: torch.Tensor
    face_id: torch.Tensor
    bary: torch.Tensor
    position: torch.Tensor
    normal: torch.Tensor


def _resolution(fn: str, resolution) -> tuple[int, int]:
    if isinstance(resolution, int) and not isinstance(resolution, bool):
        resolution = (resolution, resolution)
    if not isinstance(resolution, (tuple, list)) or len(resolution) != 2:
        raise TypeError(f"{fn}(): resolution must be an int or (H, W), got {resolution!r}")
    return (check_int(fn, "resolution[0]", resolution[0], min_value=1, max_value=16384),
            check_int(fn, "resolution[1]", resolution[1], min_value=1, max_value=16384))


def _need_uv(fn: str, mesh) -> None:
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{fn}(): mesh must be a csdkit.Mesh, got {type(mesh).__name__}")
    if mesh.uv is None:
        raise ValueError(f"{fn}(): the mesh has no UVs; run csdkit.uv.unwrap_uv(mesh) first")


def _uv_rast(mesh: Mesh, height: int, width: int) -> torch.Tensor:
    """``[1, H, W, 4]`` rasterization of the UV layout, image orientation (row 0 = v of 1)."""
    uv = mesh.uv.detach().to(mesh.vertices.dtype)
    pos = torch.cat([2.0 * uv[:, :1] - 1.0, 1.0 - 2.0 * uv[:, 1:2], torch.zeros_like(uv[:, :1]),
                     torch.ones_like(uv[:, :1])], dim=1)
    return rasterize(pos[None].contiguous(), mesh.face_uv_int32, (height, width))


def rasterize_uv(mesh: Mesh, resolution: int | tuple[int, int]) -> UVRaster:
    """Rasterize ``mesh``'s UV layout at ``resolution`` (texel centres; overlapping UVs: lowest face wins).

    Args:
        mesh: a mesh with UVs (any device).
        resolution: texture size ``(H, W)`` or an int.

    Returns:
        :class:`UVRaster` (no gradients).
    """
    fn = "rasterize_uv"
    _need_uv(fn, mesh)
    h, w = _resolution(fn, resolution)
    with torch.no_grad():
        rast = _uv_rast(mesh, h, w)
        tri = mesh.faces_int32
        position = interpolate(mesh.vertices.detach(), rast, tri)[0]
        normal = interpolate(mesh.vertex_normals().detach(), rast, tri)[0]
        normal = torch.nn.functional.normalize(normal, dim=-1)
        face_id = rast[0, ..., 3].round().long() - 1
        u, v = rast[0, ..., 0], rast[0, ..., 1]
        bary = torch.stack([u, v, (1.0 - u - v) * (face_id >= 0)], dim=-1)
    return UVRaster(face_id >= 0, face_id, bary, position, normal)


def bake_vertex_colors(mesh: Mesh, resolution: int | tuple[int, int] = 1024, *, dilate: bool = True) -> Mesh:
    """A copy of ``mesh`` whose ``texture`` holds its vertex colours, baked under its UVs.

    Args:
        mesh: a mesh with UVs and ``vertex_colors``.
        resolution: texture size ``(H, W)`` or an int.
        dilate: fill the texels outside the charts (push-pull) so sampling at seams is clean.

    Returns:
        The mesh with ``texture [H, W, 3]`` float32 (vertex colours kept as well).
    """
    fn = "bake_vertex_colors"
    _need_uv(fn, mesh)
    if mesh.vertex_colors is None:
        raise ValueError(f"{fn}(): the mesh has no vertex_colors to bake")
    h, w = _resolution(fn, resolution)
    with torch.no_grad():
        rast = _uv_rast(mesh, h, w)
        colors = interpolate(mesh.vertex_colors.detach().to(rast.dtype), rast, mesh.faces_int32)[0]
        mask = rast[0, ..., 3] > 0
        tex = dilate_texture(colors, mask) if dilate else colors
    return mesh.replace(texture=tex.float().clamp(0, 1))


def transfer_texture(src: Mesh, dst: Mesh, *, resolution: int | tuple[int, int] | None = None,
                     dilate: bool = True) -> Mesh:
    """Re-bake ``src``'s texture under ``dst``'s UVs (same faces, in the same order).

    Args:
        src: a textured mesh.
        dst: the same surface (``dst.faces`` describe the same triangles as ``src.faces``) with another
            UV layout, e.g. from :func:`csdkit.uv.unwrap_uv`.
        resolution: size of the new texture (default: ``src.texture``'s).
        dilate: fill the gutters of the new atlas (push-pull).

    Returns:
        ``dst`` with ``texture [H, W, 3]`` float32 (bilinear lookups of ``src.texture``).
    """
    fn = "transfer_texture"
    _need_uv(fn, src)
    _need_uv(fn, dst)
    if src.texture is None:
        raise ValueError(f"{fn}(): src has no texture to transfer")
    if src.num_faces != dst.num_faces:
        raise ValueError(f"{fn}(): src and dst must have the same faces, got {src.num_faces} and "
                         f"{dst.num_faces}")
    h, w = _resolution(fn, resolution if resolution is not None else tuple(src.texture.shape[:2]))
    with torch.no_grad():
        dst_dev = dst.to(src.device)
        rast = _uv_rast(dst_dev, h, w)
        src_uv = src.uv.detach().to(rast.dtype)
        src_uv_tex = torch.stack([src_uv[:, 0], 1.0 - src_uv[:, 1]], dim=-1)  # texture-op convention
        lookup = interpolate(src_uv_tex, rast, src.face_uv_int32)
        src_tex = src.texture.detach().to(rast.dtype)[None]
        colors = texture(src_tex, lookup, filter="linear", boundary="wrap")[0]
        mask = rast[0, ..., 3] > 0
        tex = dilate_texture(colors, mask) if dilate else colors * mask[..., None]
    return dst.replace(texture=tex.float().clamp(0, 1).to(dst.device))
