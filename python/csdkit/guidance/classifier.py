"""The diffusion prior as a zero-shot classifier: how much a prompt helps to denoise an image.

A text-conditional denoiser predicts the noise of ``x_t`` better under a prompt that describes the image
than under the empty prompt. The expected gap,

    advantage(x, y) = E_{t, eps} ||eps_hat(x_t, t, "") - eps||^2 - ||eps_hat(x_t, t, y) - eps||^2,

is (up to weights per ``t``) the gap between the ELBOs of ``x`` under ``y`` and unconditionally, i.e. an
estimate of ``log p(y | x)`` up to a constant (the implicit classifier that CSD's gradient is the score of).

Two directions:
- :func:`prompt_errors`: one image, several prompts, the same noise for all prompts (paired). The prompt
  with the lowest error labels the image: the zero-shot diffusion classifier (Li et al. 2023, "Your
  diffusion model is secretly a zero-shot classifier"). This direction is well calibrated.
  :func:`csdkit.pipelines.start_shape.choose_start_shape` uses it to name the shape of the prior's own
  samples of the prompt.
- :func:`denoising_advantage`: one prompt, several images, the same noise for all images. It ranks which
  image fits the prompt best, but the ranking also follows how much of the frame an image's object covers
  and how far it is from the prior's training images (docs/generation.md measures both).
"""

from __future__ import annotations

import torch

from .priors.base import DiffusionPrior

_FN = "denoising_advantage"


def prompt_and_empty(prior: DiffusionPrior, prompt: str, batch: int) -> torch.Tensor:
    """``[2 * batch, ...]`` embeddings: ``batch`` rows of ``prompt``, then ``batch`` of the empty prompt."""
    emb = prior.embed([prompt, ""])
    return torch.cat([emb[:1].expand(batch, *emb.shape[1:]), emb[1:].expand(batch, *emb.shape[1:])])


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


@torch.no_grad()
def denoising_advantage(prior: DiffusionPrior, images: torch.Tensor, prompt: str, *,
                        t_range: tuple[float, float] = (0.2, 0.65), n_timesteps: int = 8,
                        seed: int = 0) -> torch.Tensor:
    """Per-image advantage of ``prompt`` over the empty prompt at denoising (higher: fits better).

    Args:
        images: ``[B, 3, H, W]`` float in [0, 1], any device (moved to ``prior.device``; resized by
            ``prior.encode``).
        prompt: the text.
        t_range: the timesteps, as fractions of ``prior.num_train_timesteps``; ``n_timesteps`` evenly
            spaced in it. Mid-range ``t`` is where the prompt matters most: at small ``t`` the image gives
            everything away, at large ``t`` the prediction barely depends on it.
        seed: the noise draws; the same ``seed`` and ``B`` give the same noise, so calls on different
            images are paired.

    Returns:
        ``[B]`` float32 on CPU: the mean over timesteps of the squared-error gap (per element).
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{_FN}(): images must be a [B, 3, H, W] tensor, got {got}")
    if not (0.0 <= t_range[0] <= t_range[1] <= 1.0):
        raise ValueError(f"{_FN}(): t_range must be 0 <= lo <= hi <= 1, got {t_range}")
    if n_timesteps < 1:
        raise ValueError(f"{_FN}(): n_timesteps must be >= 1, got {n_timesteps}")
    x = prior.encode(images.to(prior.device, torch.float32)).to(prior.dtype)
    b = x.shape[0]
    emb = prompt_and_empty(prior, prompt, b)
    n = prior.num_train_timesteps
    steps = torch.linspace(t_range[0] * (n - 1), t_range[1] * (n - 1), n_timesteps).round().long()
    g = torch.Generator().manual_seed(seed)
    gap = torch.zeros(b)
    for t in steps.tolist():
        noise = torch.randn(x.shape, generator=g).to(x.device, x.dtype)
        tt = torch.full((b,), int(t), dtype=torch.long, device=x.device)
        x_t = prior.add_noise(x, noise, tt)
        eps = prior.predict_noise(torch.cat([x_t, x_t]), torch.cat([tt, tt]), emb).float()
        err = ((eps - noise.float().repeat(2, 1, 1, 1)) ** 2).mean(dim=(1, 2, 3)).cpu()
        gap += err[b:] - err[:b]
    return gap / len(steps)


__all__ = ["denoising_advantage", "prompt_and_empty", "prompt_errors"]
