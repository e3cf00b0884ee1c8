"""Ancestral DDPM sampling with classifier-free guidance, in the space of any
:class:`~csdkit.guidance.priors.base.DiffusionPrior` (pixels in [-1, 1] or VAE latents).

Score distillation never samples; two things do: the MiniPrior's evaluation
(:func:`csdkit.guidance.mini.sample.sample`, which decodes the result) and the start-shape choice of
``csdkit generate`` (:mod:`csdkit.pipelines.start_shape`, which classifies the samples in the prior's own
space and keeps the decoded images as a preview).
"""

from __future__ import annotations

import torch

from .priors.base import DiffusionPrior


def prior_space_shape(prior: DiffusionPrior) -> tuple[int, ...]:
    """``(C, h, w)`` of one image in the prior's space (``encode`` of a grey ``resolution``-square image)."""
    with torch.no_grad():
        grey = torch.full((1, 3, prior.resolution, prior.resolution), 0.5, device=prior.device)
        return tuple(prior.encode(grey).shape[1:])


@torch.no_grad()
def sample_prior_space(prior: DiffusionPrior, prompts: list[str], guidance: float = 7.5, steps: int = 100,
                       generator: torch.Generator | None = None, clip_x0: bool | None = None,
                       fn: str = "sample_prior_space") -> torch.Tensor:
    """Draws one sample per prompt with ancestral DDPM on ``steps`` evenly spaced timesteps.

    ``eps = eps_empty + guidance * (eps_prompt - eps_empty)``. The predicted clean sample is clipped to
    [-1, 1] when ``clip_x0`` (default: for pixel-space priors only; VAE latents are not bounded so).
    ``generator`` (CPU) makes the draw reproducible; ``fn`` names the caller in error messages.

    Returns ``[P, C, h, w]`` in the prior's space (``prior.decode`` turns it into images), in the prior's
    dtype, on ``prior.device``.
    """
    if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"{fn}(): prompts must be a non-empty list of str, got {prompts!r}")
    if not 1 <= int(steps) <= prior.num_train_timesteps:
        raise ValueError(f"{fn}(): steps must lie in [1, {prior.num_train_timesteps}], got {steps}")
    if clip_x0 is None:
        clip_x0 = not prior.latent_space
    n, dev = len(prompts), prior.device
    cond = prior.embed(list(prompts))
    empty = prior.embed([""]).expand_as(cond)
    context = torch.cat([cond, empty])
    abar = prior.alphas_cumprod.to(dev, torch.float64)
    ts = torch.linspace(prior.num_train_timesteps - 1, 0, int(steps)).round().long().unique_consecutive()
    x = torch.randn((n, *prior_space_shape(prior)), generator=generator).to(dev)
    for i, t in enumerate(ts.tolist()):
        t_prev = int(ts[i + 1]) if i + 1 < len(ts) else -1
        a_t = abar[t]
        a_prev = abar[t_prev] if t_prev >= 0 else torch.ones((), dtype=torch.float64, device=dev)
        tt = torch.full((2 * n,), t, dtype=torch.long, device=dev)
        eps_c, eps_u = prior.predict_noise(torch.cat([x, x]).to(prior.dtype), tt, context).float().chunk(2)
        eps = eps_u + guidance * (eps_c - eps_u)
        x0 = (x - (1 - a_t).sqrt().float() * eps) / a_t.sqrt().float()
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        beta = 1 - a_t / a_prev                               # beta of the respaced step
        c0 = (a_prev.sqrt() * beta / (1 - a_t)).float()
        ct = ((1 - beta).sqrt() * (1 - a_prev) / (1 - a_t)).float()
        x = c0 * x0 + ct * x
        if t_prev >= 0:
            var = (beta * (1 - a_prev) / (1 - a_t)).float()
            x = x + var.sqrt() * torch.randn(x.shape, generator=generator).to(dev)
    return x.to(prior.dtype)


__all__ = ["prior_space_shape", "sample_prior_space"]
