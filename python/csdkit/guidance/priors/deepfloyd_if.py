"""DeepFloyd IF stage I as a :class:`~csdkit.guidance.priors.base.DiffusionPrior` (pixel space, 64x64).

The CSD paper's NeRF stage uses IF-I-XL: renders resized to 64x64, mapped to [-1, 1], no VAE.
Its text encoder is T5-XXL (4.7 B parameters, ~9.5 GB in half precision), which CSD needs only
once per prompt: the prior loads it **lazily**, only when a prompt is missing from the embedding
cache, encodes, and frees it again (``keep_text_encoder=False``), so it never sits on the GPU
during optimization. Embeddings are cached on disk, so later runs with the same prompts never
load T5 at all.
"""

from __future__ import annotations

import gc
import hashlib
import os
from typing import Any

import torch
import torch.nn.functional as F

from ...ops._checks import check_tensor
from .diffusers_prior import DiffusersPrior
from .loading import downloads_allowed, load_component, resolve_device_dtype

_SUBFOLDERS = ["unet", "text_encoder", "tokenizer", "scheduler"]


class DeepFloydIF(DiffusersPrior):
    """DeepFloyd IF stage I (``IF-I-XL-v1.0``, ``IF-I-L``, ``IF-I-M``) behind the DiffusionPrior interface.

    Args:
        model: hub id (``"DeepFloyd/IF-I-XL-v1.0"``; gated: accept its license on the hub first)
            or a local diffusers folder.
        dtype: U-Net dtype; default float16 on the GPU, float32 on the CPU.
        device: default ``"cuda"`` when available, else ``"cpu"``.
        allow_download: allow fetching a hub model (default: ``$CSDKIT_ALLOW_DOWNLOADS``).
        revision, variant: passed to ``from_pretrained`` (``variant="fp16"`` halves the download).
        cache_dir: embedding cache directory; ``None`` for the default, ``False`` to disable
            (then T5 is loaded for every new prior).
        text_encoder_device: where T5 runs when it is needed (default: ``device``).
        keep_text_encoder: keep T5 loaded after encoding (default False: free it at once).
        channels_last, compile: as in :class:`~csdkit.guidance.priors.StableDiffusion`.
    """

    _fn = "DeepFloydIF"
    latent_space = False
    _use_attention_mask = True

    def __init__(
        self,
        model: str = "DeepFloyd/IF-I-XL-v1.0",
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        allow_download: bool | None = None,
        revision: str | None = None,
        variant: str | None = None,
        cache_dir: str | os.PathLike | None | bool = None,
        text_encoder_device: torch.device | str | None = None,
        keep_text_encoder: bool = False,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        fn = "DeepFloydIF()"
        if not isinstance(model, str) or not model:
            raise TypeError(f"{fn}: model must be a hub id or a local path (str), got {model!r}")
        dev, dt = resolve_device_dtype(fn, device, dtype)
        allowed = downloads_allowed(allow_download)
        from diffusers import DDPMScheduler, UNet2DConditionModel
        from transformers import AutoTokenizer

        kw: dict[str, Any] = {"allowed": allowed, "subfolders": _SUBFOLDERS}
        rev = {"revision": revision} if revision else {}
        var = {"variant": variant} if variant else {}
        scheduler = load_component(fn, DDPMScheduler.from_pretrained, model, "scheduler", **kw, **rev)
        try:
            tokenizer = load_component(fn, AutoTokenizer.from_pretrained, model, "tokenizer", **kw, **rev)
        except ImportError as exc:  # T5's sentencepiece tokenizer needs an optional package
            raise ImportError(f"{fn}: loading the T5 tokenizer of {model!r} needs the sentencepiece package: "
                              f"pip install sentencepiece protobuf ({exc})") from exc
        unet = load_component(fn, UNet2DConditionModel.from_pretrained, model, "unet", torch_dtype=dt,
                              **kw, **rev, **var)
        self._model_source = {"model": model, "allowed": allowed, "kwargs": {**rev, **var}}
        self._setup(name=model, unet=unet, scheduler=scheduler, tokenizer=tokenizer, text_encoder=None,
                    device=dev, dtype=dt, cache_dir=cache_dir, text_encoder_device=text_encoder_device,
                    keep_text_encoder=keep_text_encoder, channels_last=channels_last, compile=compile)

    @classmethod
    def from_components(
        cls,
        *,
        unet: torch.nn.Module,
        scheduler: Any,
        text_encoder: torch.nn.Module | None = None,
        tokenizer: Any | None = None,
        name: str = "deepfloyd-if-custom",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        cache_dir: str | os.PathLike | None | bool = None,
        text_encoder_device: torch.device | str | None = None,
        keep_text_encoder: bool = True,
        channels_last: bool = False,
        compile: bool = False,
    ) -> DeepFloydIF:
        """Wrap components already in memory: an IF-style ``UNet2DConditionModel`` (3 input channels,
        3 or 6 output channels), a DDPM-family scheduler, and optionally a T5 encoder + tokenizer
        (not needed when every prompt is in the embedding cache). With ``keep_text_encoder=False``
        the given encoder is dropped after its first use."""
        fn = "DeepFloydIF.from_components()"
        dev, dt = resolve_device_dtype(fn, device, dtype)
        obj = cls.__new__(cls)
        obj._model_source = None
        obj._setup(name=name, unet=unet, scheduler=scheduler, tokenizer=tokenizer, text_encoder=text_encoder,
                   device=dev, dtype=dt, cache_dir=cache_dir, text_encoder_device=text_encoder_device,
                   keep_text_encoder=keep_text_encoder, channels_last=channels_last, compile=compile)
        return obj

    def _setup(self, *, name: str, unet: torch.nn.Module, scheduler: Any, tokenizer: Any, text_encoder: Any,
               device: torch.device, dtype: torch.dtype, cache_dir: Any, text_encoder_device: Any,
               keep_text_encoder: bool, channels_last: bool, compile: bool) -> None:
        fn = "DeepFloydIF()"
        if int(getattr(unet.config, "in_channels", -1)) != 3:
            raise ValueError(f"{fn}: a pixel-space IF U-Net takes 3 input channels, got "
                             f"{getattr(unet.config, 'in_channels', None)}")
        te_dev = torch.device(text_encoder_device) if text_encoder_device is not None else device
        self._init_common(name=name, unet=unet, scheduler=scheduler, tokenizer=tokenizer,
                          text_encoder=text_encoder, device=device, dtype=dtype, cache_dir=cache_dir,
                          channels_last=channels_last, compile=compile, text_encoder_device=te_dev)
        self.keep_text_encoder = bool(keep_text_encoder)
        sample = unet.config.sample_size
        self.resolution = int(sample[0] if isinstance(sample, (tuple, list)) else sample)
        _ = self.cache_key

    # ---- T5, loaded only on a cache miss ------------------------------------------------------------
    def _compute_cache_key(self) -> str:
        if self.text_encoder is not None or self._model_source is None:
            return super()._compute_cache_key()
        # Identify T5 by its config file, without loading 4.7 B parameters.
        src = self._model_source
        ident = "unknown-text-encoder"
        try:
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(src["model"], subfolder="text_encoder",
                                             local_files_only=not src["allowed"], **src["kwargs"])
            ident = hashlib.sha256(cfg.to_json_string().encode()).hexdigest()[:16]
        except (OSError, ValueError):
            pass
        return f"{type(self).__name__}|{self.name}|{ident}|len{self.max_length}"

    def _get_text_encoder(self) -> torch.nn.Module:
        if self.text_encoder is None and self._model_source is not None and self.tokenizer is not None:
            from transformers import T5EncoderModel

            src = self._model_source
            encoder = load_component("DeepFloydIF.embed()", T5EncoderModel.from_pretrained, src["model"],
                                     "text_encoder", allowed=src["allowed"], subfolders=_SUBFOLDERS,
                                     dtype=self.dtype, **src["kwargs"])
            self.text_encoder = encoder.to(self.text_encoder_device).eval().requires_grad_(False)
        return super()._get_text_encoder()

    def _release_text_encoder(self, encoder: torch.nn.Module) -> None:
        if self.keep_text_encoder:
            return
        self.text_encoder = None
        del encoder
        gc.collect()
        if self.text_encoder_device.type == "cuda":
            torch.cuda.empty_cache()

    def release_text_encoder(self) -> None:
        """Free the T5 encoder now (it is reloaded on the next cache miss when the prior was loaded
        from a model path or id)."""
        if self.text_encoder is not None:
            keep, self.keep_text_encoder = self.keep_text_encoder, False
            self._release_text_encoder(self.text_encoder)
            self.keep_text_encoder = keep

    # ---- image <-> model space ----------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` float in [0, 1] on ``device`` -> ``x [B, 3, r, r]`` float32 in [-1, 1]
        (``r = resolution``, bilinear resize when needed), differentiable."""
        check_tensor("DeepFloydIF.encode", "images", images,
                     dtype=(torch.float16, torch.bfloat16, torch.float32, torch.float64),
                     shape=(None, 3, None, None))
        r = self.resolution
        x = images.float()
        if tuple(x.shape[-2:]) != (r, r):
            x = F.interpolate(x, (r, r), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, 3, r, r]`` in [-1, 1] -> images ``[B, 3, r, r]`` float32 in [0, 1]."""
        check_tensor("DeepFloydIF.decode", "x", x, shape=(None, 3, None, None))
        return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)
