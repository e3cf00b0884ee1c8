"""Score Distillation Sampling (SDS; Poole et al., DreamFusion), the baseline CSD is compared to.

With ``eps_y`` and ``eps_u`` the noise predictions for the prompt and the unconditional prompt
(the empty prompt, or the negative prompt when one is given) and ``eps`` the noise added to make
``x_t``::

    grad = w(t) * ( eps_y + s * (eps_y - eps_u) - eps )

(the convention of the official CSD code and threestudio: ``s`` is added to 1, so the usual
"guidance scale 100" is ``s = 100``). SDS = CSD's classifier score times ``s`` plus the
denoising term ``eps_y - eps``; CSD shows the second term is not needed. Both rows go through the
U-Net in one batched call.
"""

from __future__ import annotations

from typing import Any

import torch

from .priors.base import DiffusionPrior
from .schedule import Schedule, as_schedule
from .score_distillation import ScoreDistillation
from .view_prompts import ViewPrompts


class SDS(ScoreDistillation):
    """Score Distillation Sampling guidance.

    Args:
        prior: the diffusion model.
        prompt: text describing the target.
        guidance_scale: ``s`` in the formula (number or schedule); 100 in DreamFusion.
        negative_prompt: used instead of the empty prompt for ``eps_u`` when given.
        weighting: ``"one_minus_abar"`` (DreamFusion's ``w = 1 - abar_t``, default) or ``"uniform"``.
        t_range, grad_normalize, grad_clip, view_prompts, unet_batch, check_range: as in
            :class:`~csdkit.guidance.CSD`.
    """

    _fn = "SDS"
    _schedule_names = ("guidance_scale",)

    def __init__(
        self,
        prior: DiffusionPrior,
        prompt: str,
        guidance_scale: float | Schedule | Any = 100.0,
        *,
        negative_prompt: str | None = None,
        weighting: str = "one_minus_abar",
        t_range: tuple[Any, Any] = (0.02, 0.98),
        grad_normalize: bool = False,
        grad_clip: float | Schedule | Any | None = None,
        view_prompts: bool | ViewPrompts = False,
        unet_batch: int | None = None,
        check_range: bool = True,
    ) -> None:
        self.guidance_scale = as_schedule(guidance_scale, "SDS", "guidance_scale")
        super().__init__(prior, prompt, negative_prompt=negative_prompt, weighting=weighting, t_range=t_range,
                         grad_normalize=grad_normalize, grad_clip=grad_clip, view_prompts=view_prompts,
                         unet_batch=unet_batch, check_range=check_range)

    def _roles(self, scales: dict[str, float]) -> tuple[str, ...]:
        return ("cond", "negative") if self.negative_prompt is not None else ("cond", "empty")

    def _combine(self, eps: dict[str, torch.Tensor], noise: torch.Tensor,
                 scales: dict[str, float]) -> torch.Tensor:
        uncond = eps["negative"] if "negative" in eps else eps["empty"]
        return eps["cond"] + scales["guidance_scale"] * (eps["cond"] - uncond) - noise
