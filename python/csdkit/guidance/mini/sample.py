"""Ancestral DDPM sampling with classifier-free guidance, for any pixel-space
:class:`~csdkit.guidance.priors.base.DiffusionPrior` (used to evaluate the MiniPrior).

For the MiniPrior, ancestral DDPM gives far more faithful colours than DDIM at the same guidance,
so it is the sampler shipped here; guidance 7.5 (the default) gives the asked colour far more often
than 3 or 5 (docs/miniprior.md has the measured numbers). The sampler itself is
:func:`csdkit.guidance.sampling.sample_prior_space`; this wrapper decodes its result.
"""

from __future__ import annotations

import torch

from ..priors.base import DiffusionPrior
from ..sampling import sample_prior_space


@torch.no_grad()
def sample(prior: DiffusionPrior, prompts: list[str], guidance: float = 7.5, steps: int = 100,
           generator: torch.Generator | None = None, clip_x0: bool = True) -> torch.Tensor:
    """Draws one image per prompt with ancestral DDPM on ``steps`` evenly spaced timesteps.

    ``eps = eps_empty + guidance * (eps_prompt - eps_empty)``; the predicted clean image is clipped
    to [-1, 1] when ``clip_x0``. ``generator`` (CPU) makes the draw reproducible.

    Returns ``images [P, 3, R, R]`` float32 in [0, 1] on ``prior.device`` (``R = prior.resolution``).
    """
    x = sample_prior_space(prior, prompts, guidance, steps, generator, clip_x0, fn="sample")
    return prior.decode(x).float()
