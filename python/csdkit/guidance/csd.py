r"""Classifier Score Distillation (CSD): Yu et al., "Text-to-3D with Classifier Score Distillation" (2024).

Notation: ``x`` is a render (or its VAE latent), ``x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps``,
``eps_y``, ``eps_neg`` and ``eps_0`` the diffusion model's noise predictions for the prompt, the
negative prompt and the empty prompt. CSD keeps only the *classifier score* part of SDS (the
implicit classifier ``grad log p(y | x_t)`` is proportional to ``eps_y - eps_0``) and drops the
``eps_y - eps`` denoising term::

    grad = w(t) * [ cond_scale * (eps_y - eps_0) - beta(step) * (eps_neg - eps_0) ]

``beta = 0`` is plain CSD. With a negative prompt (``negative_weight = beta``), the official code
anneals ``beta``: ``0 -> 1`` over steps 0..5000 for the NeRF stage (DeepFloyd IF) and
``1 -> 0.5`` over 10000 steps for the mesh stage (Stable Diffusion). The official code writes the
same thing as ``cond * eps_y + uncond * eps_neg + null * eps_0`` with ``cond = cond_scale``,
``uncond = -beta`` and ``null = beta - cond_scale``.

The prompt, negative and empty rows go through the U-Net in **one** batched call (``N = 3B``
rows; ``2B`` at steps where ``beta = 0``), which is faster than three calls on every device.

Relation to VSD (ProlificDreamer)
---------------------------------
VSD's gradient is ``w(t) * (eps_pretrained(x_t, y) - eps_lora(x_t, y))``: the pretrained score
minus the score of the *distribution of the current renders*, estimated by a LoRA fine-tuned on
them alongside the 3D model. Rewrite CSD with a negative prompt as::

    grad = w(t) * [ eps_y - ( beta * eps_neg + (1 - beta) * eps_0 ) ]        (cond_scale = 1)

The subtracted term plays the role of VSD's LoRA score: instead of learning what the renders look
like, CSD *describes* it with text (``"oversaturated color, ugly, tiling, low quality, noisy"``)
and the unconditional prediction, and pushes away from it. No second network is trained, so CSD
costs three forward passes and no LoRA optimizer; it is not a separate trainer.

Editing uses the same formula: ``prompt`` = the target description, ``negative_prompt`` = the
source description.
"""

from __future__ import annotations

from typing import Any

import torch

from .priors.base import DiffusionPrior
from .schedule import Schedule, as_schedule
from .score_distillation import ScoreDistillation
from .view_prompts import ViewPrompts

#: The negative prompt of the official CSD configs.
DEFAULT_NEGATIVE_PROMPT = "oversaturated color, ugly, tiling, low quality, noisy"


class CSD(ScoreDistillation):
    """Classifier Score Distillation guidance, with an optional annealed negative prompt.

    Args:
        prior: the diffusion model (:class:`~csdkit.guidance.priors.StableDiffusion`,
            :class:`~csdkit.guidance.priors.DeepFloydIF`, MiniPrior, ...).
        prompt: text describing the target.
        negative_prompt: text to push away from (``None``: plain CSD). For editing, the source
            description.
        cond_scale: weight of the classifier score ``eps_y - eps_0`` (number or schedule).
        negative_weight: ``beta``, the weight of ``eps_neg - eps_0`` (number or schedule);
            defaults to 1 with a negative prompt, must be left out without one.
        weighting: ``"uniform"`` (``w = 1``) or ``"one_minus_abar"`` (``w = 1 - abar_t``).
        t_range: ``(t_min, t_max)`` as fractions of the training timesteps (numbers or
            schedules); ``t ~ U{int(T t_min), ..., int(T t_max)}`` per view.
        grad_normalize: divide the gradient by its global L2 norm (over the whole batch).
        grad_clip: clamp each gradient entry to ``[-c, c]`` (number, schedule or ``None``).
        view_prompts: append ``", front view"`` / side / back / overhead per camera (needs
            ``cameras=`` in the call); ``True`` or a :class:`ViewPrompts` with custom thresholds.
        unet_batch: most rows per U-Net call (``None``: all ``3B`` rows in one call; smaller
            values trade speed for peak memory).
        check_range: check that images are in [0, 1] (one device sync per call).

    Call: ``out = csd(images, step=step, generator=g, cameras=cams)``; see
    :meth:`ScoreDistillation.__call__` and :class:`~csdkit.guidance.output.GuidanceOutput`.
    """

    _fn = "CSD"
    _schedule_names = ("cond_scale", "negative_weight")

    def __init__(
        self,
        prior: DiffusionPrior,
        prompt: str,
        negative_prompt: str | None = None,
        *,
        cond_scale: float | Schedule | Any = 1.0,
        negative_weight: float | Schedule | Any | None = None,
        weighting: str = "uniform",
        t_range: tuple[Any, Any] = (0.02, 0.98),
        grad_normalize: bool = False,
        grad_clip: float | Schedule | Any | None = None,
        view_prompts: bool | ViewPrompts = False,
        unet_batch: int | None = None,
        check_range: bool = True,
    ) -> None:
        self.cond_scale = as_schedule(cond_scale, "CSD", "cond_scale")
        if negative_weight is None:
            negative_weight = 1.0 if negative_prompt is not None else 0.0
        self.negative_weight = as_schedule(negative_weight, "CSD", "negative_weight")
        if negative_prompt is None and self.negative_weight != Schedule.constant(0.0):
            raise ValueError(f"CSD(): negative_weight={self.negative_weight!r} needs a negative_prompt, got "
                             f"None "
                             f"(pass negative_prompt=..., e.g. csdkit.guidance.DEFAULT_NEGATIVE_PROMPT)")
        super().__init__(prior, prompt, negative_prompt=negative_prompt, weighting=weighting, t_range=t_range,
                         grad_normalize=grad_normalize, grad_clip=grad_clip, view_prompts=view_prompts,
                         unet_batch=unet_batch, check_range=check_range)

    def _roles(self, scales: dict[str, float]) -> tuple[str, ...]:
        if self.negative_prompt is not None and scales["negative_weight"] != 0.0:
            return ("cond", "negative", "empty")
        return ("cond", "empty")

    def _combine(self, eps: dict[str, torch.Tensor], noise: torch.Tensor,
                 scales: dict[str, float]) -> torch.Tensor:
        grad = scales["cond_scale"] * (eps["cond"] - eps["empty"])
        if "negative" in eps:
            grad = grad - scales["negative_weight"] * (eps["negative"] - eps["empty"])
        return grad
