"""The diffusion prior as a zero-shot classifier: how much a prompt helps to denoise an image.

A text-conditional denoiser predicts the noise of ``x_t`` better under a prompt that describes the image
than under the empty prompt. The expected gap,

    advantage(x, y) = E_{t, eps} ||eps_hat(x_t, t, "") - eps||^2 - ||eps_hat(x_t, t, y) - eps||^2,

is (up to weights per ``t``) the gap between the ELBOs of ``x`` under ``y`` and unconditionally, i.e. an
estimate of ``log p(y | x)`` up to a constant (the implicit classifier that CSD's gradient is the score of).

:func:`prompt_errors` compares several prompts on one image, with the same noise for every prompt (paired):
the prompt with the lowest error labels the image. This is the zero-shot diffusion classifier (Li et al.
2023, "Your diffusion model is secretly a zero-shot classifier").
:func:`csdkit.pipelines.start_shape.choose_start_shape` uses it to name the shape of the prior's own samples
of the prompt. The other direction (one prompt, several images: which image fits the prompt best) is poorly
calibrated: it also follows how much of the frame an image's object covers (docs/generation.md).
"""

from __future__ import annotations

import torch

from .priors.base import DiffusionPrior


@torch.no_grad()
def prompt_errors(prior: DiffusionPrior, x: torch.Tensor, prompts: list[str], timesteps: list[int],
                  generator: torch.Generator) -> torch.Tensor:
    """Conditional denoising error of every sample under every prompt (paired across prompts).

    Args:
        x: ``[B, C, h, w]`` in the prior's space (``prior.encode`` of images, or samples), on ``prior.device``.
        prompts: the ``K`` candidate texts.
        timesteps: the noise levels (integers in ``[0, num_train_timesteps)``) the error is averaged over.
        generator: CPU generator of the noise draws (one draw per sample and timestep, shared by all prompts).

    Returns:
        ``[B, K]`` float32 on CPU: the mean squared error between the drawn noise and ``prior.predict_noise``
        (per element, averaged over ``timesteps``). The lowest error in a row labels that sample.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"prompt_errors(): x must be a [B, C, h, w] tensor in the prior's space, got {got}")
    if not prompts or not timesteps:
        raise ValueError(f"prompt_errors(): prompts and timesteps must be non-empty, got {len(prompts)} prompts "
                         f"and {len(timesteps)} timesteps")
    emb = prior.embed(list(prompts))
    k = len(prompts)
    out = torch.zeros(x.shape[0], k)
    for i in range(x.shape[0]):
        for t in timesteps:
            noise = torch.randn(x[i:i + 1].shape, generator=generator).to(x.device, x.dtype)
            tt = torch.full((1,), int(t), dtype=torch.long, device=x.device)
            x_t = prior.add_noise(x[i:i + 1], noise, tt)
            eps = prior.predict_noise(x_t.expand(k, -1, -1, -1), tt.expand(k), emb)
            out[i] += ((eps.float() - noise.float()) ** 2).mean((1, 2, 3)).cpu()
    return out / len(timesteps)


__all__ = ["prompt_errors"]
