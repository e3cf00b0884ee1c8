"""Regularizers of CSD / DreamFusion-style text-to-3D on volume renders, and their weight schedules.

* :func:`orientation_loss` (DreamFusion): penalize visible normals that face away from the
  camera, ``sum_i stopgrad(w_i) * max(0, n_i . d)^2`` per ray, ``d`` the ray direction. Without it
  a NeRF can paint shading onto back-facing density that lambertian shading then mis-lights.
* :func:`sparsity_loss`: ``mean(sqrt(opacity^2 + eps))``, an L1-like push toward empty space
  (fewer floaters, less haze).
* :func:`opacity_entropy_loss`: the binary entropy of the opacity, pushing each pixel to be fully
  opaque or fully transparent.

:class:`VolumeRegularizers` bundles them with per-step weights: a number, a linear schedule
``[start_step, start_value, end_value, end_step]`` (constant outside the ramp, the convention of
the official CSD configs) or any callable ``step -> float`` (e.g. a ``csdkit.guidance`` schedule).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

from ..ops._checks import check_float, check_int, check_tensor

_FLOATS = (torch.float32, torch.float64)
WeightSpec = float | Sequence[float] | Callable[[int], float]


def orientation_loss(weights: torch.Tensor, normals: torch.Tensor, dirs: torch.Tensor,
                     opacity: torch.Tensor | None = None) -> torch.Tensor:
    """DreamFusion's orientation loss over the samples of a volume render.

    Args:
        weights: ``[S]`` compositing weights of the samples (detached inside: the loss moves
            normals, not visibility).
        normals: ``[S, 3]`` outward unit normals of the samples.
        dirs: ``[S, 3]`` unit directions of the samples' rays (camera -> scene).
        opacity: optional per-ray opacity ``[...]``; the sum is divided by the number of rays with
            ``opacity > 0`` (else by the number of samples with ``weights > 0``).

    Returns a scalar of the dtype and device of ``normals``, differentiable w.r.t. ``normals``.
    """
    fn = "orientation_loss"
    dims: dict[str, int] = {}
    check_tensor(fn, "weights", weights, dtype=_FLOATS, shape=("S",), dims=dims)
    check_tensor(fn, "normals", normals, dtype=_FLOATS, shape=("S", 3), dims=dims, device=weights.device)
    check_tensor(fn, "dirs", dirs, dtype=_FLOATS, shape=("S", 3), dims=dims, device=weights.device)
    facing_away = (normals * dirs).sum(-1).clamp_min(0.0)
    total = (weights.detach() * facing_away.square()).sum()
    if opacity is not None:
        check_tensor(fn, "opacity", opacity, dtype=_FLOATS, device=weights.device)
        count = (opacity > 0).sum()
    else:
        count = (weights > 0).sum()
    return total / count.clamp_min(1).to(total.dtype)


def sparsity_loss(opacity: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """``mean(sqrt(opacity^2 + eps))`` over an opacity tensor of any shape (float); a scalar."""
    check_tensor("sparsity_loss", "opacity", opacity, dtype=_FLOATS)
    check_float("sparsity_loss", "eps", eps, min_value=0.0)
    return (opacity.square() + eps).sqrt().mean()


def opacity_entropy_loss(opacity: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean binary entropy ``-(o log o + (1 - o) log(1 - o))`` of ``opacity`` clamped to [eps, 1 - eps]."""
    check_tensor("opacity_entropy_loss", "opacity", opacity, dtype=_FLOATS)
    check_float("opacity_entropy_loss", "eps", eps, min_value=1e-12, max_value=0.5)
    o = opacity.clamp(eps, 1.0 - eps)
    return -(o * o.log() + (1.0 - o) * (1.0 - o).log()).mean()


def weight_at(spec: WeightSpec, step: int, name: str = "weight") -> float:
    """Value of a weight spec at ``step``: a number, ``[start_step, start, end, end_step]``, or a callable."""
    if callable(spec):
        return float(spec(step))
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return float(spec)
    if isinstance(spec, (list, tuple)) and len(spec) == 4:
        s0, v0, v1, s1 = (float(v) for v in spec)
        if s1 <= s0:
            return v0 if step < s0 else v1
        u = min(max((step - s0) / (s1 - s0), 0.0), 1.0)
        return v0 + (v1 - v0) * u
    raise TypeError(f"VolumeRegularizers: {name} must be a number, [start_step, start_value, end_value, "
                    f"end_step] or a callable of the step, got {spec!r}")


@dataclasses.dataclass
class VolumeRegularizers:
    """Weighted regularizers of a volume render, scheduled by the global step.

    Attributes (each a number, ``[start_step, start_value, end_value, end_step]`` or ``step -> float``):
        orientation: weight of :func:`orientation_loss` (default ramps 10 -> 1000 over steps 0..5000,
            the DreamFusion-IF setting used by CSD's NeRF stage; needs renders with normals).
        sparsity: weight of :func:`sparsity_loss` (default 1).
        opacity: weight of :func:`opacity_entropy_loss` (default 0: off).
    """

    orientation: WeightSpec = (0, 10.0, 1000.0, 5000)
    sparsity: WeightSpec = 1.0
    opacity: WeightSpec = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            weight_at(getattr(self, f.name), 0, f.name)  # validates the spec

    def weights(self, step: int) -> dict[str, float]:
        """The three weights at ``step``."""
        check_int("VolumeRegularizers.weights", "step", step, min_value=0)
        return {f.name: weight_at(getattr(self, f.name), step, f.name) for f in dataclasses.fields(self)}

    def __call__(self, render: dict, step: int) -> dict[str, torch.Tensor]:
        """Weighted losses of a :meth:`csdkit.VolumeRenderer.render` output at ``step``.

        Returns a dict with one scalar per active term (``orientation``, ``sparsity``, ``opacity``,
        already multiplied by their weights) and their sum under ``total``.
        """
        w = self.weights(step)
        opacity = render["opacity"]
        out: dict[str, torch.Tensor] = {}
        if w["orientation"] != 0.0:
            samples = render.get("samples", {})
            if "normal" not in samples:
                raise ValueError("VolumeRegularizers(): the orientation loss needs per-sample normals; "
                                 "render with a shading mode that uses normals or with_normals=True")
            out["orientation"] = w["orientation"] * orientation_loss(samples["weights"], samples["normal"],
                                                                     samples["dirs"], opacity)
        if w["sparsity"] != 0.0:
            out["sparsity"] = w["sparsity"] * sparsity_loss(opacity)
        if w["opacity"] != 0.0:
            out["opacity"] = w["opacity"] * opacity_entropy_loss(opacity)
        out["total"] = sum(out.values(), opacity.new_zeros(()))
        return out

    def to_dict(self) -> dict:
        d = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if callable(v):
                to_dict = getattr(v, "to_dict", None)
                if to_dict is None:
                    raise TypeError(f"VolumeRegularizers.to_dict(): {f.name} is a callable without to_dict()")
                v = to_dict()
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VolumeRegularizers:
        return cls(**d)
