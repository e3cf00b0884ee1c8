"""What the renderers render: small protocols, so geometry never needs to know a renderer.

* :class:`TexturedSurface` — drawn by :meth:`csdkit.MeshRenderer.render`: a triangle mesh with UVs
  plus a texture, either a texel image (sampled by the rasterizer's mipmapped lookup) or a continuous
  colour field evaluated at every covered pixel's UV. :class:`csdkit.uv.TexturedMesh` follows it;
  a plain :class:`csdkit.Mesh` is rendered directly (its own texture, vertex colours or a constant).
* :class:`DensityField` — drawn by :meth:`csdkit.VolumeRenderer.render`: a box ``[-radius, radius]^3``,
  ``density(points [N, 3]) -> [N]`` and ``__call__(points, with_normals) -> {"density", "albedo"[, "normal"]}``
  (:class:`csdkit.ImplicitVolume` follows it).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from ..geometry.mesh import Mesh

__all__ = ["DensityField", "TexturedSurface"]


@runtime_checkable
class TexturedSurface(Protocol):
    """A mesh with UVs and a texture (see module doc)."""

    @property
    def surface_mesh(self) -> Mesh:
        """The mesh to rasterize; must have ``uv`` / ``face_uv``."""
        ...

    def texture_image(self) -> torch.Tensor | None:
        """``[H, W, C]`` float texels (row 0 at the top, UV origin bottom-left), or None when the
        texture is a continuous field (then :meth:`texture_at_uv` is called)."""
        ...

    def texture_at_uv(self, uv: torch.Tensor) -> torch.Tensor:
        """Colours ``[..., 3]`` at ``uv [..., 2]`` (origin bottom-left), on ``uv``'s device."""
        ...


@runtime_checkable
class DensityField(Protocol):
    """A density field in the box ``[-radius, radius]^3`` (see module doc)."""

    radius: float

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """``points [N, 3]`` -> ``density [N]`` (non-negative)."""
        ...

    def __call__(self, points: torch.Tensor, with_normals: bool = False) -> dict[str, torch.Tensor]:
        """``points [N, 3]`` -> ``{"density" [N], "albedo" [N, 3][, "normal" [N, 3]]}``."""
        ...
