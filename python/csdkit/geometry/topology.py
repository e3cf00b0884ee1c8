"""Topology of extracted surfaces: the Euler characteristic, and closing spurious handles of a DMTet.

A closed surface with ``c`` connected components and ``g`` handles (tunnels) in all has Euler
characteristic ``chi = V - E + F = 2 c - 2 g``: a ball 2, a ring 0. CSD keeps the topology a NeRF starts
from (docs/generation.md), but the grooves it carves into a surface can leave thin tunnels in the
extracted level set. :func:`close_handles` removes them with the smallest morphological closing of the
DMTet's inside set that gives the surface the Euler characteristic it should have (the start shape's),
so thin tunnels close while a real hole, wider than the closing, stays open.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..ops._checks import check_int
from .mesh import Mesh
from .mesh_regularizers import mesh_edges

__all__ = ["HandleClosing", "close_handles", "euler_characteristic", "lattice_closing"]


def euler_characteristic(mesh: Mesh) -> int:
    """``V - E + F`` of a triangle mesh, counting only the vertices that faces use.

    2 for a closed genus-0 surface (a ball), 0 for a torus, ``2 c - 2 g`` for ``c`` closed components
    with ``g`` handles in all. Integer arithmetic on ``mesh.faces``; any device.
    """
    faces = mesh.faces
    if faces.shape[0] == 0:
        return 0
    edges, _ = mesh_edges(faces, mesh.num_vertices)
    used = int(torch.unique(faces).numel())
    return used - int(edges.shape[0]) + int(faces.shape[0])


def _ball(radius: int, device: torch.device) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    r2 = x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2
    return (r2 <= radius * radius + 1e-6).float()[None, None]


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    hits = torch.nn.functional.conv3d(mask[None, None].float(), _ball(radius, mask.device), padding=radius)
    return hits[0, 0] > 0.5


def lattice_closing(inside: torch.Tensor, n: int, radius: int) -> torch.Tensor:
    """Morphological closing (dilation, then erosion) of a lattice mask by a ball of ``radius`` cells.

    Args:
        inside: ``[n**3]`` bool, vertex ``(i * n + j) * n + k`` at lattice cell ``(i, j, k)`` (the order of
            :func:`csdkit.geometry.tet_grid.tet_grid`).
        n: lattice points per axis.
        radius: ball radius in cells (``>= 0``; 0 returns a copy).

    Returns:
        ``[n**3]`` bool, a superset of ``inside``: gaps, tunnels and cavities narrower than about
        ``2 radius`` cells are filled; features wider than that are kept. Outside the lattice counts as
        outside.
    """
    radius = check_int("lattice_closing", "radius", radius, min_value=0)
    if inside.dtype != torch.bool or inside.shape != (n ** 3,):
        raise ValueError(f"lattice_closing(): inside must be a bool tensor of shape ({n ** 3},) for n={n}, got "
                         f"{inside.dtype} {tuple(inside.shape)}")
    if radius == 0:
        return inside.clone()
    mask = inside.reshape(n, n, n)
    pad = radius + 1  # room for the dilation at the border, so the erosion sees outside there
    grown = _dilate(torch.nn.functional.pad(mask.float(), [pad] * 6) > 0.5, radius)
    closed = ~_dilate(~grown, radius)
    return (closed[pad:-pad, pad:-pad, pad:-pad].reshape(-1) | inside).contiguous()


@dataclass(frozen=True)
class HandleClosing:
    """What :func:`close_handles` did.

    Attributes:
        target: the Euler characteristic asked for.
        before, after: the Euler characteristic of the exported surface before and after.
        radius: closing radius in grid cells that was applied (0: none).
        filled: grid vertices moved from outside to inside.
        reached: whether ``after == target``.
    """

    target: int
    before: int
    after: int
    radius: int
    filled: int
    reached: bool

    def to_dict(self) -> dict:
        return {"target_euler": self.target, "euler_before": self.before, "euler_after": self.after,
                "closing_radius": self.radius, "filled_vertices": self.filled, "reached": self.reached}


@torch.no_grad()
def close_handles(dmtet, target: int, max_radius: int = 3, min_component_fraction: float = 0.05) -> HandleClosing:
    """Fill the thin tunnels of a DMTet's surface until it has Euler characteristic ``target``.

    The exported surface (``dmtet.export_mesh(min_component_fraction)``, floaters dropped) is checked
    first. When it has fewer than ``target`` (more handles than asked for), closings of the inside set
    (``sdf < 0``, :func:`lattice_closing`) of radius 1, 2, ... ``max_radius`` cells are tried, and the
    first that gives ``target`` is kept: each vertex it adds gets ``sdf = -max(|sdf|, 1e-3)``, the rest of
    the SDF is unchanged, and so is the surface away from the closed tunnels. When none reaches
    ``target`` (or the surface already has ``target`` or more), the DMTet is left as it was.

    Args:
        dmtet: a :class:`~csdkit.geometry.DMTet`; its ``sdf`` is changed in place.
        target: the Euler characteristic the surface should have (2 for one ball-like part, 0 for a ring).
        max_radius: the largest closing radius tried, in grid cells (``>= 0``).
        min_component_fraction: floaters smaller than this are ignored, as at export.

    Returns:
        :class:`HandleClosing`.
    """
    max_radius = check_int("close_handles", "max_radius", max_radius, min_value=0)
    target = check_int("close_handles", "target", target)
    before = euler_characteristic(dmtet.export_mesh(min_component_fraction))
    if before >= target:
        return HandleClosing(target, before, before, 0, 0, before == target)
    n = dmtet.resolution + 1
    sdf = dmtet.sdf.detach().clone()
    inside = sdf < 0
    for radius in range(1, max_radius + 1):
        filled = lattice_closing(inside, n, radius) & ~inside
        if not bool(filled.any()):
            continue
        dmtet.sdf.copy_(torch.where(filled, -sdf.abs().clamp_min(1e-3), sdf))
        after = euler_characteristic(dmtet.export_mesh(min_component_fraction))
        if after == target:
            return HandleClosing(target, before, after, radius, int(filled.sum()), True)
    dmtet.sdf.copy_(sdf)
    return HandleClosing(target, before, before, 0, 0, False)
