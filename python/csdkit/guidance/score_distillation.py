"""The machinery shared by CSD and SDS: validation, timestep sampling, one batched U-Net call,
NaN/Inf handling, clipping, normalization and the target-trick loss.

A subclass says which prompt embeddings it needs (``_roles``) and how the noise predictions
combine into a gradient (``_combine``); everything else happens here, once.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

from ..ops._checks import check_choice, check_int, describe
from .output import GuidanceOutput
from .priors.base import DiffusionPrior
from .schedule import Schedule, as_optional_schedule, as_schedule
from .view_prompts import VIEWS, ViewPrompts

WEIGHTINGS = ("uniform", "one_minus_abar")
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Renders a hair outside [0, 1] (interpolation, soft clamps) are fine; [-1, 1] or [0, 255] are not.
_RANGE_TOL = 1e-3
_UNCHANGED = object()


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type == "cuda":
        ia = a.index if a.index is not None else torch.cuda.current_device()
        ib = b.index if b.index is not None else torch.cuda.current_device()
        return ia == ib
    return True


class ScoreDistillation:
    """Base class of the score-distillation guidances (:class:`~csdkit.guidance.CSD`,
    :class:`~csdkit.guidance.SDS`); see those for the arguments."""

    _fn = "ScoreDistillation"
    #: schedules of the subclass, by argument name (evaluated into ``GuidanceOutput.scales``).
    _schedule_names: tuple[str, ...] = ()

    def __init__(
        self,
        prior: DiffusionPrior,
        prompt: str,
        *,
        negative_prompt: str | None,
        weighting: str,
        t_range: tuple[Any, Any],
        grad_normalize: bool,
        grad_clip: Any,
        view_prompts: bool | ViewPrompts,
        unet_batch: int | None,
        check_range: bool,
    ) -> None:
        fn = self._fn
        if not isinstance(prior, DiffusionPrior):
            raise TypeError(f"{fn}(): prior must be a csdkit DiffusionPrior (StableDiffusion, DeepFloydIF, "
                            f"MiniPrior, ...), got {type(prior).__name__}")
        if not isinstance(prompt, str):
            raise TypeError(f"{fn}(): prompt must be a str, got {type(prompt).__name__} {prompt!r}")
        if negative_prompt is not None and not isinstance(negative_prompt, str):
            raise TypeError(f"{fn}(): negative_prompt must be a str or None, got "
                            f"{type(negative_prompt).__name__} {negative_prompt!r}")
        check_choice(fn, "weighting", weighting, WEIGHTINGS)
        if not isinstance(t_range, (tuple, list)) or len(t_range) != 2:
            raise ValueError(f"{fn}(): t_range must be a pair (t_min, t_max) of fractions of the diffusion "
                             f"timesteps (numbers or schedules), got {t_range!r}")
        t_min, t_max = as_schedule(t_range[0], fn, "t_range[0]"), as_schedule(t_range[1], fn, "t_range[1]")
        for name, s in (("t_range[0]", t_min), ("t_range[1]", t_max)):
            if s.min_value() < 0.0 or s.max_value() > 1.0:
                raise ValueError(f"{fn}(): {name} must stay within [0, 1] (fractions of the timesteps), got "
                                 f"{s!r}")
        if not isinstance(grad_normalize, bool):
            raise TypeError(f"{fn}(): grad_normalize must be a bool, got {type(grad_normalize).__name__}")
        clip = as_optional_schedule(grad_clip, fn, "grad_clip")
        if clip is not None and clip.min_value() <= 0:
            raise ValueError(f"{fn}(): grad_clip must be positive (or None to disable), got {clip!r}")
        if isinstance(view_prompts, bool):
            views = ViewPrompts() if view_prompts else None
        elif isinstance(view_prompts, ViewPrompts):
            views = view_prompts
        else:
            raise TypeError(f"{fn}(): view_prompts must be a bool or a ViewPrompts, got "
                            f"{type(view_prompts).__name__}")
        if unet_batch is not None:
            check_int(fn, "unet_batch", unet_batch, min_value=1)

        self.prior = prior
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.weighting = weighting
        self.t_range = (t_min, t_max)
        self.grad_normalize = grad_normalize
        self.grad_clip = clip
        self.view_prompts = views
        self.unet_batch = unet_batch
        self.check_range = bool(check_range)
        try:
            self._encode_takes_generator = "generator" in inspect.signature(prior.encode).parameters
        except (TypeError, ValueError):
            self._encode_takes_generator = False
        self._embed_prompts()

    # ---- prompts -----------------------------------------------------------------------------------
    def _prompt_table(self) -> tuple[list[str], dict[str, int]]:
        """Unique prompts to embed, and the row of the negative / empty prompt in that list."""
        cond = self.view_prompts.prompts(self.prompt) if self.view_prompts is not None else [self.prompt]
        prompts = list(cond)
        rows = {}
        for role, text in (("negative", self.negative_prompt), ("empty", "")):
            if text is None:
                continue
            if text not in prompts:
                prompts.append(text)
            rows[role] = prompts.index(text)
        return prompts, rows

    def _embed_prompts(self) -> None:
        prompts, rows = self._prompt_table()
        self._prompts = prompts
        self._rows = rows
        emb = self.prior.embed(prompts)
        if not isinstance(emb, torch.Tensor) or emb.shape[0] != len(prompts):
            got = describe(emb) if isinstance(emb, torch.Tensor) else type(emb).__name__
            raise RuntimeError(f"{self._fn}(): {type(self.prior).__name__}.embed() must return one row per "
                               f"prompt "
                               f"([{len(prompts)}, ...]), got {got}")
        self._embeddings = emb

    def set_prompt(self, prompt: str, negative_prompt: str | None | object = _UNCHANGED) -> None:
        """Change the prompt (and the negative prompt, when given) and re-embed (cached)."""
        if not isinstance(prompt, str):
            raise TypeError(f"{self._fn}.set_prompt(): prompt must be a str, got {type(prompt).__name__}")
        if negative_prompt is not _UNCHANGED:
            if negative_prompt is not None and not isinstance(negative_prompt, str):
                raise TypeError(f"{self._fn}.set_prompt(): negative_prompt must be a str or None, got "
                                f"{type(negative_prompt).__name__}")
            self.negative_prompt = negative_prompt
        self.prompt = prompt
        self._embed_prompts()

    def view_indices(self, batch: int, cameras: Any | None) -> torch.Tensor:
        """Row of each view's conditional prompt in the prompt table, ``[B]`` int64 on the prior's device."""
        device = self.prior.device
        if self.view_prompts is None:
            return torch.zeros(batch, dtype=torch.int64, device=device)
        if cameras is None:
            raise ValueError(f"{self._fn}(): view_prompts=True needs cameras=... (a csdkit.Cameras of the "
                             f"{batch} "
                             f"rendered views, for their azimuth and elevation), got None")
        if not (hasattr(cameras, "azimuth") and hasattr(cameras, "elevation")):
            raise TypeError(f"{self._fn}(): cameras must have .azimuth and .elevation (csdkit.Cameras), got "
                            f"{type(cameras).__name__}")
        az = torch.as_tensor(cameras.azimuth).reshape(-1)
        el = torch.as_tensor(cameras.elevation).reshape(-1)
        if az.numel() != batch or el.numel() != batch:
            raise ValueError(f"{self._fn}(): cameras hold {az.numel()} views but images hold {batch}")
        return self.view_prompts.view_index(az, el).to(device)

    def prompts_for(self, cameras: Any | None, batch: int = 1) -> list[str]:
        """The conditional prompt each view gets (view suffixes applied)."""
        n = len(cameras) if cameras is not None else batch
        return [self._prompts[i] for i in self.view_indices(n, cameras).tolist()]

    # ---- subclass hooks ------------------------------------------------------------------------------
    def _scales(self, step: int) -> dict[str, float]:
        return {name: getattr(self, name)(step) for name in self._schedule_names}

    def _roles(self, scales: dict[str, float]) -> tuple[str, ...]:
        """Which noise predictions are needed at these scales: a subset of cond/negative/empty."""
        raise NotImplementedError

    def _combine(self, eps: dict[str, torch.Tensor], noise: torch.Tensor,
                 scales: dict[str, float]) -> torch.Tensor:
        """The unweighted gradient from the noise predictions ``eps[role] [B, C, h, w]``."""
        raise NotImplementedError

    # ---- the call ------------------------------------------------------------------------------------
    def _check_images(self, images: Any) -> torch.Tensor:
        fn = self._fn
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"{fn}(): images must be a torch.Tensor float [B, 3, H, W] in [0, 1], got "
                            f"{type(images).__name__}")
        if images.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"{fn}(): images must be float16, bfloat16, float32 or float64 [B, 3, H, W] in "
                            f"[0, 1], "
                            f"got {describe(images)}")
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] < 1 or min(images.shape[2:]) < 1:
            channels_last = images.dim() == 4 and images.shape[-1] == 3
            hint = " (channels-last? use images.permute(0, 3, 1, 2))" if channels_last else ""
            raise ValueError(f"{fn}(): images must be float [B, 3, H, W] in [0, 1], got "
                             f"{describe(images)}{hint}")
        if not _same_device(images.device, torch.device(self.prior.device)):
            raise ValueError(f"{fn}(): images must be on {self.prior.device} (the prior's device), got "
                             f"{describe(images)}")
        if self.check_range:
            lo, hi = torch.aminmax(images.detach())
            lo, hi = float(lo), float(hi)
            if math.isnan(lo) or math.isnan(hi):
                raise ValueError(f"{fn}(): images contain NaN ({describe(images)}); check the renderer's "
                                 f"output")
            if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL:
                raise ValueError(f"{fn}(): images must hold values in [0, 1] (renders, not [-1, 1] or [0, "
                                 f"255]), "
                                 f"got min {lo:.4g}, max {hi:.4g} in {describe(images)}")
        return images

    def _sample_t(self, batch: int, scales: dict[str, float], generator: torch.Generator | None,
                  device: torch.device) -> torch.Tensor:
        n = self.prior.num_train_timesteps
        lo = int(n * scales["t_min"] + 1e-6)
        hi = min(int(n * scales["t_max"] + 1e-6), n - 1)
        if lo > hi:
            raise ValueError(f"{self._fn}(): t_range gives t_min={scales['t_min']} > t_max={scales['t_max']} "
                             f"at this step")
        gen_device = generator.device if generator is not None else device
        t = torch.randint(lo, hi + 1, (batch,), generator=generator, device=gen_device, dtype=torch.int64)
        return t.to(device)

    def _weight(self, t: torch.Tensor) -> torch.Tensor:
        if self.weighting == "uniform":
            return torch.ones(t.shape[0], 1, 1, 1, device=t.device)
        abar = self.prior.alphas_cumprod.to(t.device, torch.float32)[t]
        return (1.0 - abar).view(-1, 1, 1, 1)

    def _predict(self, x_t: torch.Tensor, t: torch.Tensor, cond_rows: torch.Tensor,
                 roles: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Noise predictions for every role, in one U-Net call over ``len(roles) * B`` rows
        (or chunks of ``unet_batch`` rows)."""
        b = x_t.shape[0]
        emb = self._embeddings
        idx = torch.cat([cond_rows if r == "cond" else torch.full_like(cond_rows, self._rows[r])
                         for r in roles])
        x_in = x_t.repeat(len(roles), *([1] * (x_t.dim() - 1)))
        t_in = t.repeat(len(roles))
        e_in = emb[idx.to(emb.device)]
        step = self.unet_batch or x_in.shape[0]
        outs = [self.prior.predict_noise(x_in[i:i + step], t_in[i:i + step], e_in[i:i + step])
                for i in range(0, x_in.shape[0], step)]
        eps = torch.cat(outs) if len(outs) > 1 else outs[0]
        if eps.shape != x_in.shape:
            raise RuntimeError(f"{self._fn}(): {type(self.prior).__name__}.predict_noise() returned "
                               f"{describe(eps)} for inputs of shape {list(x_in.shape)}")
        return {r: eps[i * b:(i + 1) * b].float() for i, r in enumerate(roles)}

    def __call__(self, images: torch.Tensor, *, step: int = 0, generator: torch.Generator | None = None,
                 cameras: Any | None = None) -> GuidanceOutput:
        """Evaluate the guidance on a batch of renders.

        Args:
            images: ``[B, 3, H, W]`` float in [0, 1] on the prior's device, differentiable
                (resized to the prior's resolution as needed).
            step: global optimization step; all schedules are evaluated at it.
            generator: optional ``torch.Generator`` (any device) for the timesteps, the noise and
                the VAE posterior sample; ``None`` uses the global RNG.
            cameras: the cameras of the ``B`` views (``csdkit.Cameras``); needed with
                ``view_prompts=True``.

        Returns:
            :class:`~csdkit.guidance.output.GuidanceOutput`; ``out.loss.backward()`` carries
            ``out.grad / B`` into ``x`` and through ``prior.encode`` into ``images``.
        """
        fn = self._fn
        images = self._check_images(images)
        check_int(fn, "step", step, min_value=0)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{fn}(): generator must be a torch.Generator or None, got "
                            f"{type(generator).__name__}")
        batch = images.shape[0]
        cond_rows = self.view_indices(batch, cameras)

        scales = {"t_min": self.t_range[0](step), "t_max": self.t_range[1](step), **self._scales(step)}
        if self.grad_clip is not None:
            scales["grad_clip"] = self.grad_clip(step)

        encoded = (self.prior.encode(images, generator=generator) if self._encode_takes_generator
                   else self.prior.encode(images))
        x = encoded.float()
        t = self._sample_t(batch, scales, generator, x.device)
        gen_device = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, device=gen_device, dtype=torch.float32).to(x.device)

        roles = self._roles(scales)
        with torch.no_grad():
            x_t = self.prior.add_noise(x.detach(), noise, t)
            eps = self._predict(x_t, t, cond_rows, roles)
            grad = self._weight(t) * self._combine(eps, noise, scales)
            finite = torch.isfinite(grad)
            nonfinite = (~finite).sum()
            grad = torch.where(finite, grad, torch.zeros((), dtype=grad.dtype, device=grad.device))
            if self.grad_clip is not None:
                grad = grad.clamp(-scales["grad_clip"], scales["grad_clip"])
            if self.grad_normalize:
                grad = grad / (grad.norm() + 1e-8)
            grad_norm, n_bad = torch.stack([grad.norm(), nonfinite.float()]).tolist()

        target = (x - grad).detach()
        loss = 0.5 * torch.nn.functional.mse_loss(x, target, reduction="sum") / batch
        return GuidanceOutput(loss=loss, grad=grad, grad_norm=grad_norm, t=t, step=step, x=x,
                              num_nonfinite=int(n_bad), scales=scales,
                              prompts=[self._prompts[i] for i in cond_rows.tolist()])

    # ---- config --------------------------------------------------------------------------------------
    def _common_config(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "weighting": self.weighting,
            "t_range": [self.t_range[0].to_config(), self.t_range[1].to_config()],
            "grad_normalize": self.grad_normalize,
            "grad_clip": self.grad_clip.to_config() if self.grad_clip is not None else None,
            "view_prompts": self.view_prompts.to_config() if self.view_prompts is not None else False,
            "unet_batch": self.unet_batch,
        }

    def to_config(self) -> dict[str, Any]:
        """A JSON-serializable dict; ``guidance_from_config(cfg, prior)`` rebuilds the object."""
        cfg = self._common_config()
        for name in self._schedule_names:
            s: Schedule = getattr(self, name)
            cfg[name] = s.to_config()
        return cfg

    def __repr__(self) -> str:
        parts = [f"prior={type(self.prior).__name__}({self.prior.name!r})", f"prompt={self.prompt!r}"]
        if self.negative_prompt is not None:
            parts.append(f"negative_prompt={self.negative_prompt!r}")
        parts += [f"{n}={getattr(self, n)!r}" for n in self._schedule_names]
        parts += [f"weighting={self.weighting!r}", f"t_range=({self.t_range[0]!r}, {self.t_range[1]!r})"]
        if self.grad_normalize:
            parts.append("grad_normalize=True")
        if self.grad_clip is not None:
            parts.append(f"grad_clip={self.grad_clip!r}")
        if self.view_prompts is not None:
            parts.append("view_prompts=True")
        return f"{type(self).__name__}({', '.join(parts)})"


__all__ = ["VIEWS", "WEIGHTINGS", "ScoreDistillation"]
