"""What a guidance call returns."""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class GuidanceOutput:
    """Result of one guidance evaluation (``out = guidance(images, step=..., generator=...)``).

    Attributes:
        loss: scalar float32 tensor on the prior's device, differentiable w.r.t. the images.
            It is ``0.5 * ||x - stopgrad(x - grad)||^2 / B`` (the official code's target trick),
            so ``loss.backward()`` gives ``d loss / d x_b = grad_b / B`` for each of the ``B``
            views, i.e. exactly ``grad`` when ``B = 1``, and carries it through ``prior.encode``
            (the VAE for latent priors) into the images and whatever rendered them.
        grad: ``[B, C, h, w]`` float32 (detached), the distillation gradient in the prior's model
            space after NaN/Inf zeroing, clipping and normalization.
        grad_norm: global L2 norm of ``grad`` (a Python float, for logging).
        t: ``[B]`` int64, the sampled diffusion timesteps.
        step: the global step the schedules were evaluated at.
        x: ``[B, C, h, w]`` float32, the model-space input (latents or pixels in [-1, 1]), part of
            the autograd graph of ``loss``.
        num_nonfinite: how many entries of the raw gradient were NaN/Inf (they are zeroed).
        scales: the schedule values used at ``step`` (e.g. ``negative_weight``, ``t_min``).
        prompts: the prompt used for each view (view-dependent prompts differ per view).
    """

    loss: torch.Tensor
    grad: torch.Tensor
    grad_norm: float
    t: torch.Tensor
    step: int
    x: torch.Tensor
    num_nonfinite: int = 0
    scales: dict[str, float] = dataclasses.field(default_factory=dict)
    prompts: list[str] = dataclasses.field(default_factory=list)

    def log_dict(self) -> dict[str, float]:
        """Flat numbers for ``metrics.jsonl``: loss, grad norm, mean timestep, non-finite count, scales."""
        out = {
            "loss": float(self.loss.detach()),
            "grad_norm": self.grad_norm,
            "t_mean": float(self.t.float().mean()),
            "nonfinite": float(self.num_nonfinite),
        }
        out.update({f"scale/{k}": float(v) for k, v in self.scales.items()})
        return out
