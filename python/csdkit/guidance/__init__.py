"""Score-distillation guidance (CSD, SDS) and the diffusion priors it queries.

    prior = csdkit.guidance.StableDiffusion()          # or DeepFloydIF(), MiniPrior(), build_prior("sd-tiny")
    csd = csdkit.guidance.CSD(prior, "a wooden chair", negative_prompt=DEFAULT_NEGATIVE_PROMPT,
                              negative_weight=Schedule.linear(0, 1.0, 0.5, 10000))
    out = csd(renders, step=step, generator=g)         # renders [B, 3, H, W] in [0, 1]
    out.loss.backward()                                # carries the CSD gradient into the renderer

See :mod:`csdkit.guidance.csd` for the math (and its relation to VSD) and
:mod:`csdkit.guidance.presets` for the official settings.
"""

from .csd import CSD, DEFAULT_NEGATIVE_PROMPT
from .mini import MiniPrior
from .output import GuidanceOutput
from .presets import (
    GUIDANCE_PRESETS,
    PRESET_MODELS,
    guidance_from_config,
    guidance_preset,
    guidance_preset_names,
    official_scales,
)
from .priors import (
    DeepFloydIF,
    DiffusionPrior,
    EmbeddingCache,
    ModelWeightsNotFoundError,
    StableDiffusion,
    build_prior,
)
from .schedule import Schedule
from .score_distillation import ScoreDistillation
from .sds import SDS
from .view_prompts import VIEWS, ViewPrompts

__all__ = [
    "CSD",
    "DEFAULT_NEGATIVE_PROMPT",
    "GUIDANCE_PRESETS",
    "PRESET_MODELS",
    "SDS",
    "VIEWS",
    "DeepFloydIF",
    "DiffusionPrior",
    "EmbeddingCache",
    "GuidanceOutput",
    "MiniPrior",
    "ModelWeightsNotFoundError",
    "Schedule",
    "ScoreDistillation",
    "StableDiffusion",
    "ViewPrompts",
    "build_prior",
    "guidance_from_config",
    "guidance_preset",
    "guidance_preset_names",
    "official_scales",
]
