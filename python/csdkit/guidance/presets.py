"""Named guidance presets matching the official CSD code, and config round-trips.

================ ==============================================================================
preset           settings (from the official configs ``csd-if.yaml`` / ``csd-sd-refine.yaml``)
================ ==============================================================================
``csd-nerf-if``  NeRF stage, DeepFloyd IF-I-XL at 64x64: CSD, cond 1, negative weight 0 -> 1 over
                 steps 0..5000, w(t) = 1, gradient divided by its global L2 norm,
                 t ~ U[0.02, 0.98] up to step 5000 then U[0.02, 0.5], view-dependent prompts.
``csd-mesh-sd``  mesh / texture stage, Stable Diffusion 2.1 base at 512x512: CSD, cond 1,
                 negative weight 1 -> 0.5 over 10000 steps, w(t) = 1 - abar_t, no normalization,
                 t ~ U[0.02, 0.5], view-dependent prompts.
``sds``          the SDS baseline: guidance scale 100, w(t) = 1 - abar_t, t ~ U[0.02, 0.98].
================ ==============================================================================

Both CSD presets use the official negative prompt
``"oversaturated color, ugly, tiling, low quality, noisy"``. The official code writes the IF
timestep switch as the linear schedule ``[5000, 0.98, 0.5, 5001]`` (0.98 at step 5000, 0.5 from
step 5001); the preset keeps that form. ``PRESET_MODELS`` names the prior each preset was tuned for.
"""

from __future__ import annotations

import copy
from typing import Any

from .csd import CSD, DEFAULT_NEGATIVE_PROMPT
from .priors.base import DiffusionPrior
from .score_distillation import ScoreDistillation
from .sds import SDS
from .view_prompts import ViewPrompts

GUIDANCE_PRESETS: dict[str, dict[str, Any]] = {
    "csd-nerf-if": {
        "type": "CSD",
        "negative_prompt": DEFAULT_NEGATIVE_PROMPT,
        "cond_scale": 1.0,
        "negative_weight": [0, 0.0, 1.0, 5000],
        "weighting": "uniform",
        "t_range": [0.02, [5000, 0.98, 0.5, 5001]],
        "grad_normalize": True,
        "grad_clip": None,
        "view_prompts": True,
    },
    "csd-mesh-sd": {
        "type": "CSD",
        "negative_prompt": DEFAULT_NEGATIVE_PROMPT,
        "cond_scale": 1.0,
        "negative_weight": [0, 1.0, 0.5, 10000],
        "weighting": "one_minus_abar",
        "t_range": [0.02, 0.5],
        "grad_normalize": False,
        "grad_clip": None,
        "view_prompts": True,
    },
    "sds": {
        "type": "SDS",
        "negative_prompt": None,
        "guidance_scale": 100.0,
        "weighting": "one_minus_abar",
        "t_range": [0.02, 0.98],
        "grad_normalize": False,
        "grad_clip": None,
        "view_prompts": True,
    },
}

#: The pretrained model each preset was tuned with.
PRESET_MODELS = {
    "csd-nerf-if": "DeepFloyd/IF-I-XL-v1.0",
    "csd-mesh-sd": "stabilityai/stable-diffusion-2-1-base",
    "sds": "stabilityai/stable-diffusion-2-1-base",
}

_TYPES: dict[str, type[ScoreDistillation]] = {"CSD": CSD, "SDS": SDS}


def guidance_preset_names() -> list[str]:
    return sorted(GUIDANCE_PRESETS)


def guidance_from_config(config: dict[str, Any], prior: DiffusionPrior,
                         prompt: str | None = None) -> ScoreDistillation:
    """Rebuild a guidance from ``guidance.to_config()`` (or a preset dict) on ``prior``.

    Args:
        config: dict with ``"type"`` (``"CSD"`` or ``"SDS"``) and the constructor arguments;
            schedules in any :class:`~csdkit.guidance.schedule.Schedule` config form.
        prior: the diffusion prior to query.
        prompt: overrides ``config["prompt"]``.
    """
    if not isinstance(config, dict):
        raise TypeError(f"guidance_from_config(): config must be a dict, got {type(config).__name__}")
    cfg = copy.deepcopy(config)
    kind = cfg.pop("type", None)
    if kind not in _TYPES:
        raise ValueError(f"guidance_from_config(): config['type'] must be one of {sorted(_TYPES)}, got "
                         f"{kind!r}")
    if prompt is not None:
        cfg["prompt"] = prompt
    if "prompt" not in cfg:
        raise ValueError("guidance_from_config(): no prompt: pass prompt=... or put 'prompt' in the config")
    views = cfg.get("view_prompts", False)
    if isinstance(views, dict):
        cfg["view_prompts"] = ViewPrompts(**views)
    if "t_range" in cfg:
        cfg["t_range"] = tuple(cfg["t_range"])
    known = set(_constructor_args(_TYPES[kind]))
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"guidance_from_config(): unknown {kind} argument(s) {unknown}; known: "
                         f"{sorted(known)}")
    return _TYPES[kind](prior, **cfg)


def _constructor_args(cls: type) -> list[str]:
    import inspect

    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "prior")]


def guidance_preset(name: str, prior: DiffusionPrior, prompt: str, **overrides: Any) -> ScoreDistillation:
    """A guidance configured like the official code.

    Args:
        name: ``"csd-nerf-if"``, ``"csd-mesh-sd"`` or ``"sds"`` (see the module docstring).
        prior: the prior to query (any prior works; the presets were tuned for ``PRESET_MODELS``).
        prompt: text describing the target.
        overrides: constructor arguments to change, e.g. ``view_prompts=False`` when there are no
            cameras, or ``negative_prompt=`` the source description for editing.

    Example::

        prior = csdkit.guidance.StableDiffusion()   # local weights
        csd = guidance_preset("csd-mesh-sd", prior, "a wooden chair")
        out = csd(renders, step=step, cameras=cams)
        out.loss.backward()
    """
    if name not in GUIDANCE_PRESETS:
        raise ValueError(f"guidance_preset(): name must be one of {guidance_preset_names()}, got {name!r}")
    cfg = copy.deepcopy(GUIDANCE_PRESETS[name])
    cfg.update(overrides)
    return guidance_from_config(cfg, prior, prompt)


def official_scales(guidance: CSD, step: int) -> dict[str, float]:
    """The official code's ``cond / uncond / null`` scales equivalent to ``guidance`` at ``step``
    (``grad = cond * eps_y + uncond * eps_neg + null * eps_0``)."""
    cond, beta = guidance.cond_scale(step), guidance.negative_weight(step)
    return {"cond": cond, "uncond": -beta, "null": beta - cond}


__all__ = ["GUIDANCE_PRESETS", "PRESET_MODELS", "guidance_from_config", "guidance_preset",
           "guidance_preset_names", "official_scales"]
