"""Choosing the diffusion prior of a job (``--model mini|sd21|PATH``) and its per-prior defaults."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from ..guidance.mini import MiniPrior
from ..guidance.priors.base import DiffusionPrior
from ..guidance.priors.stable_diffusion import StableDiffusion

MINI_NOTICE = ("csdkit: using the embedded MiniPrior (a small toy model that knows colours, simple patterns "
               "and primitive shapes); pass --model sd21 or --model PATH for Stable Diffusion")


@dataclasses.dataclass(frozen=True)
class TextureDefaults:
    """Defaults of the texturing job for one kind of prior."""

    steps: int
    resolution: int
    texture_size: int
    batch_size: int
    lr: float
    distance_range: tuple[float, float]
    fov_range: tuple[float, float]
    t_range: tuple[float, float]
    negative_prompt: str | None


#: The embedded MiniPrior works at 32x32 on primitives seen from ~3.4 units with a 40 degree lens.
MINI_DEFAULTS = TextureDefaults(steps=300, resolution=64, texture_size=512, batch_size=4, lr=0.03,
                                distance_range=(3.0, 3.6), fov_range=(38.0, 45.0), t_range=(0.02, 0.98),
                                negative_prompt=None)
#: Stable Diffusion 2.1 base: the official mesh-stage setting (512 renders, t in [0.02, 0.5]).
SD_DEFAULTS = TextureDefaults(steps=1200, resolution=512, texture_size=1024, batch_size=1, lr=0.01,
                              distance_range=(2.6, 3.2), fov_range=(40.0, 55.0), t_range=(0.02, 0.5),
                              negative_prompt="oversaturated color, ugly, tiling, low quality, noisy")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; otherwise the named device (checked)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but torch sees no CUDA device (torch "
                         f"{torch.__version__}); use --device cpu or install a CUDA build of torch")
    return dev


def load_prior(model: str | DiffusionPrior | None, device: torch.device, *, quiet: bool = False) -> DiffusionPrior:
    """The prior for ``model``: ``None``/``"mini"`` (embedded MiniPrior), ``"sd21"`` (Stable Diffusion
    2.1 base from the local Hugging Face cache, or downloaded if allowed), a local diffusers folder,
    a hub id, or a ready :class:`DiffusionPrior`."""
    if isinstance(model, DiffusionPrior):
        return model
    if model is None or model == "mini":
        if not quiet:
            print(MINI_NOTICE)
        return MiniPrior(device=device)
    if not isinstance(model, str):
        raise TypeError(f"model must be 'mini', 'sd21', a path or a DiffusionPrior, got {type(model).__name__}")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if model == "sd21":
        return StableDiffusion("stabilityai/stable-diffusion-2-1-base", device=device, dtype=dtype)
    path = Path(os.path.expanduser(model))
    if path.exists():
        if (path / "miniprior_config.json").exists():
            return MiniPrior(path, device=device)
        return StableDiffusion(str(path), device=device, dtype=dtype)
    if "/" in model:  # a hub id
        return StableDiffusion(model, device=device, dtype=dtype)
    raise ValueError(f"model must be 'mini', 'sd21', an existing folder or a hub id 'org/name', got {model!r} "
                     "(no such folder)")


def is_mini(prior: DiffusionPrior) -> bool:
    """Whether ``prior`` is the embedded MiniPrior (it has its own defaults and no view prompts)."""
    return isinstance(prior, MiniPrior)


def defaults_for(prior: DiffusionPrior) -> TextureDefaults:
    return MINI_DEFAULTS if isinstance(prior, MiniPrior) else SD_DEFAULTS
