"""Shading shared by every csdkit renderer: point lights, the four shading modes, their schedule.

Text-to-3D optimization alternates between a few ways of turning a surface point into a colour
(DreamFusion's trick against "painted-on" geometry):

* ``"albedo"``: the base colour, unlit.
* ``"lambertian"``: ``albedo * (ambient + diffuse * max(0, n . l))`` with a point light.
* ``"textureless"``: the same lighting on a white albedo (shading only): geometry must explain
  the image on its own.
* ``"normal"``: the normal map ``(n + 1) / 2`` as the image.

Everything here is a function of per-point tensors (albedo, normals, light directions), so the
volume renderer (per sample) and the mesh renderer (per pixel) share it. Normals and light
directions are unit vectors in world space; light directions point *from the surface to the light*.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from ..ops._checks import check_choice, check_float, check_int, check_tensor
from .cameras import Cameras

SHADING_MODES = ("albedo", "lambertian", "textureless", "normal")
"""The shading modes every renderer accepts."""

NEEDS_NORMALS = {"albedo": False, "lambertian": True, "textureless": True, "normal": True}
"""Whether a shading mode reads normals (renderers skip computing them when it does not)."""

NEEDS_LIGHTS = {"albedo": False, "lambertian": True, "textureless": True, "normal": False}
"""Whether a shading mode reads the light."""

_FLOATS = (torch.float32, torch.float64)


def check_shading(fn: str, shading: str) -> str:
    """Raise ValueError naming ``fn`` unless ``shading`` is one of :data:`SHADING_MODES`."""
    check_choice(fn, "shading", shading, SHADING_MODES)
    return shading


def _color(fn: str, name: str, value, batch: int, device, dtype) -> torch.Tensor:
    """A number, an RGB triple, or ``[B, 3]`` -> ``[B, 3]`` tensor."""
    t = torch.as_tensor(value, dtype=dtype, device=device)
    if t.dim() == 0:
        t = t.expand(3)
    if t.dim() == 1:
        if t.shape[0] != 3:
            raise ValueError(f"{fn}(): {name} must be a number, an RGB triple or [{batch}, 3], got shape "
                             f"{list(t.shape)}")
        t = t[None].expand(batch, 3)
    if t.shape != (batch, 3):
        raise ValueError(f"{fn}(): {name} must be a number, an RGB triple or [{batch}, 3], got shape "
                         f"{list(t.shape)}")
    return t


@dataclasses.dataclass
class PointLights:
    """One point light per view of a batch.

    Attributes:
        positions: ``[B, 3]`` world-space light positions (float32/float64, any device).
        ambient: ``[B, 3]`` ambient light colour (added regardless of orientation).
        diffuse: ``[B, 3]`` diffuse light colour (scaled by ``max(0, n . l)``).

    Build them with :meth:`at` (fixed positions) or :meth:`sample` (the random lights of
    text-to-3D training, placed around each camera).
    """

    positions: torch.Tensor
    ambient: torch.Tensor
    diffuse: torch.Tensor

    def __post_init__(self) -> None:
        fn = "PointLights"
        dims: dict[str, int] = {}
        check_tensor(fn, "positions", self.positions, dtype=_FLOATS, shape=("B", 3), dims=dims)
        dev = self.positions.device
        check_tensor(fn, "ambient", self.ambient, dtype=_FLOATS, shape=("B", 3), dims=dims, device=dev)
        check_tensor(fn, "diffuse", self.diffuse, dtype=_FLOATS, shape=("B", 3), dims=dims, device=dev)

    @classmethod
    def at(cls, positions, ambient=0.1, diffuse=0.9, device: torch.device | str | None = None) -> PointLights:
        """Lights at ``positions`` (``[B, 3]`` or ``[3]``); colours are numbers, RGB triples or ``[B, 3]``."""
        pos = torch.as_tensor(positions, dtype=torch.float32, device=device)
        if pos.dim() == 1:
            pos = pos[None]
        check_tensor("PointLights.at", "positions", pos, shape=(None, 3))
        b = pos.shape[0]
        return cls(pos, _color("PointLights.at", "ambient", ambient, b, pos.device, pos.dtype),
                   _color("PointLights.at", "diffuse", diffuse, b, pos.device, pos.dtype))

    @classmethod
    def sample(
        cls,
        cameras: Cameras,
        *,
        distance_range: Sequence[float] = (0.8, 1.5),
        position_perturb: float = 1.0,
        ambient=0.1,
        diffuse=0.9,
        generator: torch.Generator | None = None,
    ) -> PointLights:
        """Random lights near each camera (DreamFusion's light sampling).

        The light of view ``b`` sits in direction ``normalize(camera_b + position_perturb * N(0, I))``
        at a distance drawn uniformly from ``distance_range``: mostly in front of the visible side,
        so shading shows the geometry the camera sees. Random draws come from ``generator`` (on the
        CPU; results are moved to the cameras' device).
        """
        fn = "PointLights.sample"
        if len(distance_range) != 2 or not (0 < distance_range[0] <= distance_range[1]):
            raise ValueError(f"{fn}(): distance_range must be (low, high) with 0 < low <= high, "
                             f"got {tuple(distance_range)}")
        check_float(fn, "position_perturb", position_perturb, min_value=0.0)
        b = len(cameras)
        noise = torch.randn(b, 3, generator=generator).to(cameras.device, cameras.c2w.dtype)
        direction = torch.nn.functional.normalize(cameras.position + position_perturb * noise, dim=-1)
        u = torch.rand(b, generator=generator).to(cameras.device, cameras.c2w.dtype)
        distance = distance_range[0] + (distance_range[1] - distance_range[0]) * u
        return cls(direction * distance[:, None],
                   _color(fn, "ambient", ambient, b, cameras.device, cameras.c2w.dtype),
                   _color(fn, "diffuse", diffuse, b, cameras.device, cameras.c2w.dtype))

    def __len__(self) -> int:
        return self.positions.shape[0]

    def to(self, device=None, dtype: torch.dtype | None = None) -> PointLights:
        return PointLights(self.positions.to(device, dtype), self.ambient.to(device, dtype),
                           self.diffuse.to(device, dtype))

    def directions(self, points: torch.Tensor, view_index: torch.Tensor) -> torch.Tensor:
        """Unit vectors ``[N, 3]`` from ``points [N, 3]`` to the light of view ``view_index [N]`` (int64)."""
        return torch.nn.functional.normalize(self.positions[view_index] - points, dim=-1)


# ---- per-point shading ---------------------------------------------------------------------------
def lambertian(albedo: torch.Tensor, normals: torch.Tensor, light_dirs: torch.Tensor,
               ambient: torch.Tensor, diffuse: torch.Tensor) -> torch.Tensor:
    """Lambertian shading ``albedo * (ambient + diffuse * max(0, n . l))``.

    Args:
        albedo: ``[..., 3]`` base colour in [0, 1].
        normals: ``[..., 3]`` unit normals; light_dirs ``[..., 3]`` unit vectors to the light.
        ambient, diffuse: ``[..., 3]`` (or broadcastable) light colours.

    Returns ``[..., 3]``, same dtype and device, differentiable w.r.t. every input.
    """
    cos = (normals * light_dirs).sum(-1, keepdim=True).clamp_min(0.0)
    return albedo * (ambient + diffuse * cos)


def textureless(normals: torch.Tensor, light_dirs: torch.Tensor, ambient: torch.Tensor,
                diffuse: torch.Tensor) -> torch.Tensor:
    """Lambertian shading of a white surface: ``ambient + diffuse * max(0, n . l)``, ``[..., 3]``."""
    cos = (normals * light_dirs).sum(-1, keepdim=True).clamp_min(0.0)
    return (ambient + diffuse * cos).expand(*cos.shape[:-1], 3)


def normal_to_rgb(normals: torch.Tensor) -> torch.Tensor:
    """World normals ``[..., 3]`` in [-1, 1] -> colours ``(n + 1) / 2`` in [0, 1]."""
    return (normals + 1.0) * 0.5


def shade(mode: str, albedo: torch.Tensor | None = None, normals: torch.Tensor | None = None,
          light_dirs: torch.Tensor | None = None, ambient: torch.Tensor | None = None,
          diffuse: torch.Tensor | None = None) -> torch.Tensor:
    """Colour ``[..., 3]`` of points shaded with ``mode`` (one of :data:`SHADING_MODES`).

    ``albedo`` is needed by ``"albedo"`` and ``"lambertian"``; ``normals`` by every mode but
    ``"albedo"``; ``light_dirs``, ``ambient`` and ``diffuse`` by ``"lambertian"`` and ``"textureless"``.
    All are ``[..., 3]`` (colours may broadcast); a missing one raises ValueError.
    """
    check_shading("shade", mode)
    need = {"albedo": albedo is None and mode in ("albedo", "lambertian"),
            "normals": normals is None and NEEDS_NORMALS[mode],
            "light_dirs": light_dirs is None and NEEDS_LIGHTS[mode],
            "ambient": ambient is None and NEEDS_LIGHTS[mode],
            "diffuse": diffuse is None and NEEDS_LIGHTS[mode]}
    missing = [k for k, v in need.items() if v]
    if missing:
        raise ValueError(f"shade(): shading={mode!r} needs {', '.join(missing)}, got None")
    if mode == "albedo":
        return albedo
    if mode == "lambertian":
        return lambertian(albedo, normals, light_dirs, ambient, diffuse)
    if mode == "textureless":
        return textureless(normals, light_dirs, ambient, diffuse)
    return normal_to_rgb(normals)


# ---- the mode schedule of text-to-3D ---------------------------------------------------------------
@dataclasses.dataclass
class ShadingSchedule:
    """Which shading mode a text-to-3D step renders with.

    During the first ``albedo_only_steps`` steps every render is ``"albedo"`` (let the prior shape
    the colours first). Afterwards each step draws: ``"albedo"`` with probability ``albedo_prob``,
    otherwise a shaded render that is ``"textureless"`` with probability ``textureless_prob`` and
    ``"lambertian"`` else. Defaults follow the DreamFusion setting used by CSD's NeRF stage
    (1000 albedo-only steps, then 25% albedo, 37.5% lambertian, 37.5% textureless).
    """

    albedo_only_steps: int = 1000
    albedo_prob: float = 0.25
    textureless_prob: float = 0.5

    def __post_init__(self) -> None:
        fn = "ShadingSchedule"
        check_int(fn, "albedo_only_steps", self.albedo_only_steps, min_value=0)
        check_float(fn, "albedo_prob", self.albedo_prob, min_value=0.0, max_value=1.0)
        check_float(fn, "textureless_prob", self.textureless_prob, min_value=0.0, max_value=1.0)

    def probabilities(self, step: int) -> dict[str, float]:
        """Probability of each mode at ``step`` (sums to 1)."""
        if step < self.albedo_only_steps:
            return {"albedo": 1.0, "lambertian": 0.0, "textureless": 0.0}
        shaded = 1.0 - self.albedo_prob
        return {"albedo": self.albedo_prob, "lambertian": shaded * (1.0 - self.textureless_prob),
                "textureless": shaded * self.textureless_prob}

    def mode(self, step: int, generator: torch.Generator | None = None) -> str:
        """Draw the shading mode of ``step`` (deterministic given ``generator``)."""
        check_int("ShadingSchedule.mode", "step", step, min_value=0)
        probs = self.probabilities(step)
        u = float(torch.rand((), generator=generator))
        acc = 0.0
        for name, p in probs.items():
            acc += p
            if u < acc:
                return name
        return "textureless" if probs["textureless"] > 0 else ("lambertian" if probs["lambertian"] > 0
                                                              else "albedo")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ShadingSchedule:
        return cls(**d)

