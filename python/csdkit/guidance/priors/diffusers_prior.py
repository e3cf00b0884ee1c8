"""What Stable Diffusion and DeepFloyd IF share: a diffusers ``UNet2DConditionModel``, a DDPM
noise schedule, a tokenizer + text encoder behind the embedding cache, device/dtype handling,
and the speed options (PyTorch SDPA attention, ``channels_last``, ``torch.compile``).

diffusers and transformers are imported lazily, by the loaders and the preset builders only, so
``import csdkit`` stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from ...ops._checks import check_tensor
from .base import DiffusionPrior
from .embedding_cache import EmbeddingCache, module_fingerprint

PREDICTION_TYPES = ("epsilon", "v_prediction")


def make_embedding_cache(cache_dir: str | os.PathLike | None | bool) -> EmbeddingCache | None:
    """``None``/``True``: the default directory; ``False``: memory only; a path: that directory."""
    if cache_dir is False:
        return None
    if cache_dir is None or cache_dir is True:
        return EmbeddingCache()
    return EmbeddingCache(cache_dir)


def move_module(module: torch.nn.Module, device: torch.device | None = None,
                dtype: torch.dtype | None = None) -> torch.nn.Module:
    """Move/cast only what differs. Casts through ``torch.nn.Module.to``: diffusers' override
    only adds a warning about fp32-only submodules, which these architectures do not have."""
    params = [p for p in module.parameters() if p.is_floating_point()]
    if dtype is not None and all(p.dtype == dtype for p in params):
        dtype = None
    if device is not None and all(p.device == torch.device(device) for p in params):
        device = None
    if device is None and dtype is None:
        return module
    return torch.nn.Module.to(module, device=device, dtype=dtype)


def check_prompts(fn: str, prompts: Any) -> list[str]:
    if isinstance(prompts, str):
        raise TypeError(f"{fn}: prompts must be a list of str, got a single str {prompts!r} (wrap it in a "
                        f"list)")
    if not isinstance(prompts, Sequence) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"{fn}: prompts must be a list of str, got {prompts!r}")
    if len(prompts) == 0:
        raise ValueError(f"{fn}: prompts must hold at least one prompt, got an empty list")
    return list(prompts)


class DiffusersPrior(DiffusionPrior):
    """Base of the priors built on diffusers components (see the module docstring)."""

    _fn = "DiffusersPrior"
    #: pass the tokenizer's attention mask to the text encoder (T5 needs it, SD's CLIP does not).
    _use_attention_mask = False
    #: prompt length in tokens: both SD and IF were trained on 77-token prompts.
    _max_tokens = 77

    def _init_common(
        self,
        *,
        name: str,
        unet: torch.nn.Module,
        scheduler: Any,
        tokenizer: Any | None,
        text_encoder: torch.nn.Module | None,
        device: torch.device,
        dtype: torch.dtype,
        cache_dir: str | os.PathLike | None | bool,
        channels_last: bool,
        compile: bool,
        text_encoder_device: torch.device | None = None,
    ) -> None:
        fn = f"{type(self).__name__}()"
        if not isinstance(name, str) or not name:
            raise TypeError(f"{fn}: name must be a non-empty str, got {name!r}")
        if not isinstance(unet, torch.nn.Module) or not hasattr(unet, "config"):
            raise TypeError(f"{fn}: unet must be a diffusers UNet2DConditionModel, got {type(unet).__name__}")
        abar = getattr(scheduler, "alphas_cumprod", None)
        if not isinstance(abar, torch.Tensor) or abar.dim() != 1:
            raise TypeError(f"{fn}: scheduler must be a diffusers DDPM-family scheduler with alphas_cumprod "
                            f"(DDPMScheduler, DDIMScheduler, ...), got {type(scheduler).__name__}")
        prediction = getattr(scheduler.config, "prediction_type", "epsilon")
        if prediction not in PREDICTION_TYPES:
            raise ValueError(f"{fn}: the scheduler's prediction_type must be one of "
                             f"{list(PREDICTION_TYPES)}, "
                             f"got {prediction!r}")
        self.name = name
        self.device = device
        self.dtype = dtype
        self.prediction_type = prediction
        self.scheduler = scheduler
        self.alphas_cumprod = abar.detach().to(device=device, dtype=torch.float32)
        self.unet = move_module(unet, device, dtype).eval().requires_grad_(False)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.unet.to(memory_format=torch.channels_last)
        self._unet_forward = torch.compile(self.unet) if compile else self.unet
        self.tokenizer = tokenizer
        self.text_encoder_device = text_encoder_device if text_encoder_device is not None else device
        self.text_encoder = None
        if text_encoder is not None:
            # Device only: the encoder keeps its own dtype (T5 keeps some layers in float32 to avoid
            # fp16 overflow); its output is cast to ``dtype``.
            self.text_encoder = move_module(text_encoder, self.text_encoder_device).eval()
            self.text_encoder.requires_grad_(False)
        self.embedding_cache = make_embedding_cache(cache_dir)
        self._cache_key: str | None = None

    # ---- properties ---------------------------------------------------------------------------------
    @property
    def in_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def max_length(self) -> int:
        """Token length of every prompt (padded / truncated)."""
        n = min(int(getattr(self.tokenizer, "model_max_length", self._max_tokens) or self._max_tokens),
                self._max_tokens)
        if self.text_encoder is not None:
            n_pos = getattr(self.text_encoder.config, "max_position_embeddings", None)
            if n_pos:
                n = min(n, int(n_pos))
        return n

    @property
    def cache_key(self) -> str:
        if self._cache_key is None:
            self._cache_key = self._compute_cache_key()
        return self._cache_key

    def _compute_cache_key(self) -> str:
        ident = module_fingerprint(self.text_encoder) if self.text_encoder is not None else "no-text-encoder"
        return f"{type(self).__name__}|{self.name}|{ident}|len{self.max_length}"

    # ---- text ----------------------------------------------------------------------------------------
    def embed(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings ``[P, L, D]`` (``dtype``, on ``device``) for ``P`` prompts, cached in memory
        and on disk (see :mod:`~csdkit.guidance.priors.embedding_cache`); ``""`` is unconditional."""
        prompts = check_prompts(f"{type(self).__name__}.embed()", prompts)
        return self.cached_embed(prompts, self._encode_text).to(self.dtype)

    def _get_text_encoder(self) -> torch.nn.Module:
        if self.text_encoder is None or self.tokenizer is None:
            raise RuntimeError(f"{type(self).__name__}.embed(): these prompts are not in the embedding "
                               f"cache and "
                               f"the prior has no text encoder/tokenizer; pass text_encoder= and tokenizer= "
                               f"to "
                               f"from_components()")
        return self.text_encoder

    def _release_text_encoder(self, encoder: torch.nn.Module) -> None:
        """Called after each batch of text encoding (priors that offload override it)."""

    def _encode_text(self, prompts: list[str]) -> torch.Tensor:
        encoder = self._get_text_encoder()
        tokens = self.tokenizer(prompts, padding="max_length", max_length=self.max_length, truncation=True,
                                return_tensors="pt")
        dev = next(encoder.parameters()).device
        kwargs = {"attention_mask": tokens.attention_mask.to(dev)} if self._use_attention_mask else {}
        try:
            out = encoder(tokens.input_ids.to(dev), **kwargs)[0]
        finally:
            self._release_text_encoder(encoder)
        return out.to(device=self.device, dtype=self.dtype)

    # ---- noise prediction ----------------------------------------------------------------------------
    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """Noise prediction ``eps [N, C, h, w]`` (``dtype``) for ``x_t [N, C, h, w]`` (any float dtype),
        ``t [N]`` int64 and ``embeddings [N, L, D]``, all on ``device``; one U-Net call.

        Models trained with v-prediction are converted to epsilon; models that also predict a
        variance (DeepFloyd IF's 6 output channels) return only the noise channels.
        """
        fn = f"{type(self).__name__}.predict_noise"
        dims: dict[str, int] = {}
        check_tensor(fn, "x_t", x_t, shape=("N", self.in_channels, None, None), dims=dims)
        check_tensor(fn, "t", t, dtype=(torch.int64, torch.int32), shape=("N",), dims=dims)
        check_tensor(fn, "embeddings", embeddings, shape=("N", None, None), dims=dims)
        x = x_t.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self._unet_forward(x, t, encoder_hidden_states=embeddings.to(self.dtype)).sample
        c = self.in_channels
        if out.shape[1] == 2 * c:  # learned variance: [eps, variance]
            out = out[:, :c]
        if self.prediction_type == "v_prediction":
            abar = self.alphas_cumprod[t].view(-1, 1, 1, 1)
            out = (abar.sqrt() * out.float() + (1 - abar).sqrt() * x_t.float()).to(out.dtype)
        return out.contiguous()
