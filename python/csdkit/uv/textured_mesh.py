"""``TexturedMesh``: a mesh with a UV atlas and a learnable texture — the geometry texturing optimizes.

It follows the renderer's *textured surface* protocol (:class:`csdkit.render.TexturedSurface`):
``surface_mesh`` (the mesh with UVs), ``texture_image()`` (a texel image for the rasterizer's
mipmapped lookup, or None) and ``texture_at_uv(uv)`` (colours of a continuous field at pixel UVs).
Render it with ``MeshRenderer.render(textured_mesh, cameras, ...)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..geometry.mesh import Mesh
from ..io.export import export_mesh
from .bake import rasterize_uv
from .dilation import dilate_texture
from .texture_field import HashGridTexture, make_texture_field
from .uv_unwrap import unwrap_uv


class TexturedMesh(nn.Module):
    """A fixed mesh whose appearance is a learnable UV texture.

    Args:
        mesh: the :class:`~csdkit.Mesh` (any device). Without UVs (or with ``keep_uvs=False``) it is
            unwrapped with xatlas in an isolated process (:func:`csdkit.uv.unwrap_uv`).
        texture_size: side ``S`` of the square texture (texels).
        parametrization: ``"pyramid"`` (default), ``"texels"`` or ``"hashgrid"``; see
            :mod:`csdkit.uv.texture_field`.
        init_color: initial colour (a number or RGB in [0, 1]).
        keep_uvs: keep the mesh's own UVs instead of computing an atlas.
        unwrap_kwargs: extra arguments of :func:`csdkit.uv.unwrap_uv` (``timeout``, ``padding``...).

    Attributes:
        mesh: the mesh with UVs (``uv [Vt, 2]``, ``face_uv [F, 3]``); its own texture is ignored.
        field: the texture module; ``texture()`` returns ``[S, S, 3]`` float32 in [0, 1].
        chart_mask: ``[S, S]`` bool, texels covered by a UV chart (used for seam dilation).
    """

    def __init__(self, mesh: Mesh, texture_size: int = 1024, parametrization: str = "pyramid", *,
                 init_color=0.5, keep_uvs: bool = False, unwrap_kwargs: dict | None = None) -> None:
        super().__init__()
        if not isinstance(mesh, Mesh):
            raise TypeError(f"TexturedMesh(): mesh must be a csdkit.Mesh, got {type(mesh).__name__}")
        self.field = make_texture_field(parametrization, texture_size, init_color)
        self.parametrization = parametrization
        self.texture_size = texture_size
        if not (keep_uvs and mesh.has_uv):
            mesh = unwrap_uv(mesh, keep_uvs=keep_uvs, resolution=texture_size, **(unwrap_kwargs or {}))
        self.mesh = mesh.replace(texture=None) if mesh.texture is not None else mesh
        self.register_buffer("chart_mask", rasterize_uv(self.mesh, texture_size).mask, persistent=False)

    @classmethod
    def from_uv_mesh(cls, mesh: Mesh, texture_size: int, parametrization: str = "pyramid",
                     init_color=0.5) -> TexturedMesh:
        """Build from a mesh that already carries its final UVs (no unwrapping)."""
        return cls(mesh, texture_size, parametrization, init_color=init_color, keep_uvs=True)

    def reset_texture(self, init_image: torch.Tensor) -> None:
        """Restart the texture field from ``init_image`` ``[S, S, 3]`` float in [0, 1] (row 0 = the v = 1 edge,
        e.g. a bake under :attr:`mesh`'s UVs); see :func:`csdkit.uv.texture_field.make_texture_field`.
        The new field's parameters replace the old ones (build optimizers afterwards)."""
        device = self.chart_mask.device
        self.field = make_texture_field(self.parametrization, self.texture_size, init_image=init_image).to(device)

    def texture(self) -> torch.Tensor:
        """The current texture ``[S, S, 3]`` float32 in [0, 1] (differentiable)."""
        return self.field()

    # ---- the renderer's textured-surface protocol ----------------------------------------------
    @property
    def surface_mesh(self) -> Mesh:
        """The mesh with its UV atlas (what the rasterizer draws)."""
        return self.mesh

    def texture_image(self) -> torch.Tensor | None:
        """``[S, S, 3]`` texels for the rasterizer's (mipmapped) texture lookup, or None for the hash-grid
        field, which is evaluated per pixel by :meth:`texture_at_uv` instead."""
        return None if isinstance(self.field, HashGridTexture) else self.texture()

    def texture_at_uv(self, uv: torch.Tensor) -> torch.Tensor:
        """Colours ``[..., 3]`` in [0, 1] at ``uv [..., 2]`` (origin bottom-left), differentiable."""
        if isinstance(self.field, HashGridTexture):
            return self.field.colors(uv)
        raise TypeError("TexturedMesh.texture_at_uv(): only the 'hashgrid' parametrization is a continuous field; "
                        f"{self.parametrization!r} textures are sampled from texture_image()")

    @torch.no_grad()
    def baked_texture(self, dilate: bool = True) -> torch.Tensor:
        """The texture for export ``[S, S, 3]``: texels outside the charts continued from them (push-pull),
        so bilinear and mipmapped sampling at chart borders never picks up unused texels."""
        tex = self.texture().detach().float()
        if dilate:
            tex = dilate_texture(tex, self.chart_mask.to(tex.device))
        return tex

    def textured_mesh(self, dilate: bool = True) -> Mesh:
        """The mesh with the baked texture attached (``Mesh.texture``)."""
        return self.mesh.replace(texture=self.baked_texture(dilate).to(self.mesh.device))

    def export(self, path: str | Path, dilate: bool = True) -> Path:
        """Write ``.glb`` (PBR baseColorTexture) or ``.obj`` (+ ``.mtl`` + ``.png``) by suffix."""
        return export_mesh(self.textured_mesh(dilate), path)
