"""Stable Diffusion as a :class:`~csdkit.guidance.priors.base.DiffusionPrior` (latent space).

``StableDiffusion("stabilityai/stable-diffusion-2-1-base")`` loads the diffusers components from
the local Hugging Face cache or a local folder (downloads only when allowed, see
:mod:`~csdkit.guidance.priors.loading`); ``StableDiffusion.from_components(...)`` wraps components
already in memory (your own fine-tune, or tiny random ones in tests). The CSD paper's mesh stage
uses SD 2.1 base at 512x512 renders (64x64 latents).

Renders are resized to ``resolution`` (512 for SD 2.x base), mapped to [-1, 1] and encoded by
the VAE *with gradient* (``encode``), so the guidance gradient flows back into the renderer.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F

from ...ops._checks import check_choice, check_tensor
from .diffusers_prior import DiffusersPrior, move_module
from .loading import downloads_allowed, load_component, resolve_device_dtype

_SUBFOLDERS = ["unet", "vae", "text_encoder", "tokenizer", "scheduler"]
LATENT_MODES = ("sample", "mean")


class StableDiffusion(DiffusersPrior):
    """Stable Diffusion (1.x / 2.x, epsilon or v-prediction) behind the DiffusionPrior interface.

    Args:
        model: hub id (``"stabilityai/stable-diffusion-2-1-base"``) or a local diffusers folder.
        dtype: weights and compute dtype; default float16 on the GPU, float32 on the CPU.
        device: default ``"cuda"`` when available, else ``"cpu"``.
        allow_download: allow fetching a hub model (default: ``$CSDKIT_ALLOW_DOWNLOADS``).
        revision, variant: passed to ``from_pretrained`` (e.g. ``variant="fp16"``).
        cache_dir: embedding cache directory; ``None`` for the default, ``False`` to disable.
        latent_mode: ``"sample"`` draws the VAE posterior sample (as the official code) using the
            guidance's generator; ``"mean"`` uses the posterior mean (deterministic).
        vae_slicing: encode one image at a time (lower peak memory for large batches).
        channels_last: run the U-Net in ``channels_last`` memory format (faster on tensor cores).
        offload_text_encoder: keep the text encoder on the CPU between embedding calls (saves
            ~0.7 GB of GPU memory for SD 2.1; embeddings are cached anyway).
        compile: wrap the U-Net in ``torch.compile`` (first call slow, later calls faster).

    Attention runs on PyTorch's scaled-dot-product attention (diffusers' default processor with
    torch 2), i.e. flash / memory-efficient kernels on the GPU.
    """

    _fn = "StableDiffusion"
    latent_space = True

    def __init__(
        self,
        model: str = "stabilityai/stable-diffusion-2-1-base",
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        allow_download: bool | None = None,
        revision: str | None = None,
        variant: str | None = None,
        cache_dir: str | os.PathLike | None | bool = None,
        latent_mode: str = "sample",
        vae_slicing: bool = False,
        channels_last: bool = False,
        offload_text_encoder: bool = False,
        compile: bool = False,
    ) -> None:
        fn = "StableDiffusion()"
        if not isinstance(model, str) or not model:
            raise TypeError(f"{fn}: model must be a hub id or a local path (str), got {model!r}")
        dev, dt = resolve_device_dtype(fn, device, dtype)
        allowed = downloads_allowed(allow_download)
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import AutoTokenizer, CLIPTextModel

        kw: dict[str, Any] = {"allowed": allowed, "subfolders": _SUBFOLDERS}
        rev = {"revision": revision} if revision else {}
        var = {"variant": variant} if variant else {}
        # Small files first, so a missing model fails fast.
        scheduler = load_component(fn, DDPMScheduler.from_pretrained, model, "scheduler", **kw, **rev)
        tokenizer = load_component(fn, AutoTokenizer.from_pretrained, model, "tokenizer", **kw, **rev)
        text_encoder = load_component(fn, CLIPTextModel.from_pretrained, model, "text_encoder", dtype=dt,
                                      **kw, **rev, **var)
        vae = load_component(fn, AutoencoderKL.from_pretrained, model, "vae", torch_dtype=dt,
                             **kw, **rev, **var)
        unet = load_component(fn, UNet2DConditionModel.from_pretrained, model, "unet", torch_dtype=dt,
                              **kw, **rev, **var)
        self._setup(name=model, unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                    scheduler=scheduler, device=dev, dtype=dt, cache_dir=cache_dir, latent_mode=latent_mode,
                    vae_slicing=vae_slicing, channels_last=channels_last,
                    offload_text_encoder=offload_text_encoder, compile=compile)

    @classmethod
    def from_components(
        cls,
        *,
        unet: torch.nn.Module,
        vae: torch.nn.Module,
        text_encoder: torch.nn.Module | None,
        tokenizer: Any | None,
        scheduler: Any,
        name: str = "stable-diffusion-custom",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        cache_dir: str | os.PathLike | None | bool = None,
        latent_mode: str = "sample",
        vae_slicing: bool = False,
        channels_last: bool = False,
        offload_text_encoder: bool = False,
        compile: bool = False,
    ) -> StableDiffusion:
        """Wrap diffusers/transformers components already in memory (moved to ``device``/``dtype``).

        Args:
            unet: ``UNet2DConditionModel`` with ``in_channels`` = the VAE's latent channels.
            vae: ``AutoencoderKL``.
            text_encoder, tokenizer: e.g. ``CLIPTextModel`` and its tokenizer; may be ``None``
                when every prompt is already in the embedding cache.
            scheduler: a DDPM-family scheduler (its ``alphas_cumprod`` and ``prediction_type``).
            name: model name, part of the embedding-cache key (with a weight fingerprint).
            Other arguments: as in the constructor.
        """
        fn = "StableDiffusion.from_components()"
        dev, dt = resolve_device_dtype(fn, device, dtype)
        obj = cls.__new__(cls)
        obj._setup(name=name, unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                   scheduler=scheduler, device=dev, dtype=dt, cache_dir=cache_dir, latent_mode=latent_mode,
                   vae_slicing=vae_slicing, channels_last=channels_last,
                   offload_text_encoder=offload_text_encoder, compile=compile)
        return obj

    def _setup(self, *, name: str, unet: torch.nn.Module, vae: torch.nn.Module, text_encoder: Any,
               tokenizer: Any, scheduler: Any, device: torch.device, dtype: torch.dtype, cache_dir: Any,
               latent_mode: str, vae_slicing: bool, channels_last: bool, offload_text_encoder: bool,
               compile: bool) -> None:
        fn = "StableDiffusion()"
        check_choice(fn, "latent_mode", latent_mode, LATENT_MODES)
        if not (isinstance(vae, torch.nn.Module) and hasattr(vae, "encode") and hasattr(vae, "config")):
            raise TypeError(f"{fn}: vae must be a diffusers AutoencoderKL, got {type(vae).__name__}")
        latent_channels = int(vae.config.latent_channels)
        if int(unet.config.in_channels) != latent_channels:
            raise ValueError(f"{fn}: the U-Net takes {unet.config.in_channels} input channels but the VAE "
                             f"makes "
                             f"{latent_channels}-channel latents")
        self.offload_text_encoder = bool(offload_text_encoder)
        te_device = torch.device("cpu") if self.offload_text_encoder else device
        self._init_common(name=name, unet=unet, scheduler=scheduler, tokenizer=tokenizer,
                          text_encoder=text_encoder, device=device, dtype=dtype, cache_dir=cache_dir,
                          channels_last=channels_last, compile=compile, text_encoder_device=te_device)
        self.vae = move_module(vae, device, dtype).eval().requires_grad_(False)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.scaling_factor = float(getattr(vae.config, "scaling_factor", 0.18215))
        shift = getattr(vae.config, "shift_factor", None)
        self.shift_factor = float(shift) if shift is not None else 0.0
        sample = unet.config.sample_size
        sample = sample[0] if isinstance(sample, (tuple, list)) else sample
        self.resolution = int(sample) * self.vae_scale_factor
        self.latent_mode = latent_mode
        self.vae_slicing = bool(vae_slicing)
        _ = self.cache_key  # fingerprint the text encoder now, while it is loaded

    # ---- text encoder offload -----------------------------------------------------------------------
    def _get_text_encoder(self) -> torch.nn.Module:
        encoder = super()._get_text_encoder()
        if self.offload_text_encoder:
            encoder.to(self.device)
        return encoder

    def _release_text_encoder(self, encoder: torch.nn.Module) -> None:
        if self.offload_text_encoder:
            encoder.to("cpu")

    # ---- image <-> latent ---------------------------------------------------------------------------
    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``images [B, 3, H, W]`` float in [0, 1] on ``device`` -> latents ``[B, 4, r/8, r/8]`` (``dtype``),
        differentiable; resized to ``resolution`` (bilinear) when needed.

        Args:
            generator: RNG for the posterior sample (``latent_mode="sample"``); any device.
        """
        check_tensor("StableDiffusion.encode", "images", images,
                     dtype=(torch.float16, torch.bfloat16, torch.float32, torch.float64),
                     shape=(None, 3, None, None))
        r = self.resolution
        x = images
        if tuple(x.shape[-2:]) != (r, r):
            x = F.interpolate(x.float(), (r, r), mode="bilinear", align_corners=False)
        x = (2.0 * x - 1.0).to(self.dtype)
        chunks = x.split(1) if self.vae_slicing else (x,)
        latents = []
        for c in chunks:
            dist = self.vae.encode(c).latent_dist
            z = dist.sample(generator=generator) if self.latent_mode == "sample" else dist.mode()
            latents.append(z)
        z = torch.cat(latents) if len(latents) > 1 else latents[0]
        return (z - self.shift_factor) * self.scaling_factor

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, 4, h, w]`` -> images ``[B, 3, 8h, 8w]`` float32 in [0, 1] (differentiable)."""
        check_tensor("StableDiffusion.decode", "x", x, shape=(None, self.in_channels, None, None))
        z = (x / self.scaling_factor + self.shift_factor).to(self.dtype)
        img = self.vae.decode(z).sample
        return ((img.float() + 1.0) / 2.0).clamp(0.0, 1.0)
