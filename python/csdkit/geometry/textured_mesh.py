"""``TexturedMesh``: a mesh with a UV atlas and a learnable texture — the geometry texturing optimizes."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..render.cameras import Cameras
from ..render.mesh_renderer import MeshRenderer
from .mesh import Mesh
from .texture_field import HashGridTexture, make_texture_field


class TexturedMesh(nn.Module):
    """A fixed mesh whose appearance is a learnable UV texture.

    Args:
        mesh: the :class:`~csdkit.Mesh` (any device). Without UVs (or with ``keep_uvs=False``) it is
            unwrapped with xatlas in an isolated process (:func:`csdkit.texture.unwrap_uv`).
        texture_size: side ``S`` of the square texture (texels).
        parametrization: ``"pyramid"`` (default), ``"texels"`` or ``"hashgrid"``; see
            :mod:`csdkit.geometry.texture_field`.
        init_color: initial colour (a number or RGB in [0, 1]).
        keep_uvs: keep the mesh's own UVs instead of computing an atlas.
        unwrap_kwargs: extra arguments of :func:`csdkit.texture.unwrap_uv` (``timeout``, ``padding``...).

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
            from ..texture.uv_unwrap import unwrap_uv

            mesh = unwrap_uv(mesh, keep_uvs=keep_uvs, resolution=texture_size, **(unwrap_kwargs or {}))
        self.mesh = mesh.replace(texture=None) if mesh.texture is not None else mesh
        from ..texture.bake import rasterize_uv

        self.register_buffer("chart_mask", rasterize_uv(self.mesh, texture_size).mask, persistent=False)

    @classmethod
    def from_uv_mesh(cls, mesh: Mesh, texture_size: int, parametrization: str = "pyramid",
                     init_color=0.5) -> TexturedMesh:
        """Build from a mesh that already carries its final UVs (no unwrapping)."""
        return cls(mesh, texture_size, parametrization, init_color=init_color, keep_uvs=True)

    def texture(self) -> torch.Tensor:
        """The current texture ``[S, S, 3]`` float32 in [0, 1] (differentiable)."""
        return self.field()

    def render(self, renderer: MeshRenderer, cameras: Cameras, **kwargs) -> dict[str, torch.Tensor]:
        """Render with ``renderer`` (see :meth:`MeshRenderer.render` for ``kwargs`` and outputs).

        Texel parametrizations pass the texture to the rasterizer's texture sampling (mipmapped);
        the hash-grid field is evaluated at every covered pixel's UV instead.
        """
        if not isinstance(self.field, HashGridTexture):
            return renderer.render(self.mesh, cameras, texture=self.texture(), **kwargs)
        white = torch.ones(1, 1, 3, device=cameras.device)
        out = renderer.render(self.mesh, cameras, texture=white, **kwargs)  # shading only, albedo 1
        mask = out["mask"]
        colors = self.field.colors(out["uv"]) * mask
        # rgb = shade * albedo over the background: replace the unit albedo by the field's colour.
        shade = torch.where(mask > 0, out["rgb"], torch.zeros_like(out["rgb"]))
        background = out["rgb"] * (1 - mask)
        out = dict(out)
        out["rgb"] = shade * colors + background
        out["albedo"] = colors
        return out

    @torch.no_grad()
    def baked_texture(self, dilate: bool = True) -> torch.Tensor:
        """The texture for export ``[S, S, 3]``: texels outside the charts continued from them (push-pull),
        so bilinear and mipmapped sampling at chart borders never picks up unused texels."""
        tex = self.texture().detach().float()
        if dilate:
            from ..texture.dilation import dilate_texture

            tex = dilate_texture(tex, self.chart_mask.to(tex.device))
        return tex

    def textured_mesh(self, dilate: bool = True) -> Mesh:
        """The mesh with the baked texture attached (``Mesh.texture``)."""
        return self.mesh.replace(texture=self.baked_texture(dilate).to(self.mesh.device))

    def export(self, path: str | Path, dilate: bool = True) -> Path:
        """Write ``.glb`` (PBR baseColorTexture) or ``.obj`` (+ ``.mtl`` + ``.png``) by suffix."""
        from ..texture.export import export_mesh

        return export_mesh(self.textured_mesh(dilate), path)
