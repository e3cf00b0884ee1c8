"""``EditResult``: what an edit returns (shared by the mesh and the volume paths)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch


@dataclasses.dataclass
class EditResult:
    """What :meth:`Editor.edit` returns.

    Attributes:
        kind: ``"appearance"`` (mesh texture) or ``"shape"`` (implicit volume: shape and appearance).
        asset: the edited asset: a :class:`~csdkit.Mesh` in the input's own coordinates with the
            input's vertices, faces and UVs and the edited ``texture``; or the edited volume (an
            :class:`~csdkit.ImplicitVolume`, or a :class:`~csdkit.editing.volume.RegionVolume` that is the
            original outside the region).
        original: the input asset as it was edited from (for a mesh: with the texture it started from).
        texture: ``[H, W, 3]`` float32 edited texture (CPU), row 0 at the top; None for volumes.
        original_texture: ``[H, W, 3]`` float32 starting texture (CPU); None for volumes.
        region_mask: ``[H, W]`` bool texels the edit could change (CPU); None for volumes.
        status: ``"completed"`` or ``"interrupted"`` (Ctrl-C; continue with ``resume=True``).
        steps: optimization steps done; seconds: optimization time (all sessions of a resumed run).
        metrics: held-out measurements of the result, e.g. ``render_change`` (mean absolute difference
            of edited and original albedo renders over the object, 8 orbit views) and, for meshes,
            ``texture_change`` (mean absolute texel difference over the UV charts).
        files: output files by name, when a job (:func:`csdkit.pipelines.edit`) wrote a run directory.
        out_dir: that run directory.
    """

    kind: str
    asset: Any
    original: Any
    texture: torch.Tensor | None
    original_texture: torch.Tensor | None
    region_mask: torch.Tensor | None
    status: str
    steps: int
    seconds: float
    metrics: dict[str, float]
    files: dict[str, Path] = dataclasses.field(default_factory=dict)
    out_dir: Path | None = None
