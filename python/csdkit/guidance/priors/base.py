"""The interface every diffusion prior implements (Stable Diffusion, DeepFloyd IF, MiniPrior).

A prior turns rendered images into the space its denoiser works in (``encode``: VAE latents for
latent-diffusion models, resized pixels in [-1, 1] for pixel-space ones), predicts noise for a
batch of noisy inputs under a batch of prompt embeddings (``predict_noise``), and turns prompts
into embeddings (``embed``). Guidance objects (:mod:`csdkit.guidance`) only talk to this
interface, so any prior works with CSD and SDS.

Text embeddings are cached: :meth:`DiffusionPrior.cached_embed` memoizes them in memory and, when
the prior has an :class:`~csdkit.guidance.priors.embedding_cache.EmbeddingCache`, on disk under
``cache_key`` (model identity) and the prompt. Concrete priors call it from ``embed``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import torch

from .embedding_cache import EmbeddingCache


class DiffusionPrior(abc.ABC):
    """A text-conditional epsilon-prediction diffusion model with a DDPM noise schedule.

    Attributes:
        name: identifier of the model (used as the embedding-cache key).
        resolution: side of the square images the model works on (renders are resized to it).
        latent_space: True when ``encode`` returns VAE latents.
        dtype: dtype of the denoiser's computations.
        device: where the denoiser runs.
        alphas_cumprod: ``[num_train_timesteps]`` float32 on ``device``, the cumulative product
            of ``1 - beta_t`` (``abar_t``); ``x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps``.
        embedding_cache: optional on-disk cache used by :meth:`cached_embed` (``None``: memory only).
    """

    name: str = "prior"
    resolution: int = 64
    latent_space: bool = False
    dtype: torch.dtype = torch.float32
    device: torch.device = torch.device("cpu")
    alphas_cumprod: torch.Tensor
    embedding_cache: EmbeddingCache | None = None

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    # ---- the four operations ----------------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` float in [0, 1] -> model input ``x [B, C, h, w]`` (differentiable).

        Resizes to ``resolution`` as needed. Pixel-space priors return ``2 * images - 1``.
        """

    @abc.abstractmethod
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Model space ``x [B, C, h, w]`` -> ``images [B, 3, H, W]`` in [0, 1]."""

    @abc.abstractmethod
    def embed(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings ``[P, ...]`` for ``P`` prompts (``""`` is the unconditional prompt)."""

    @abc.abstractmethod
    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """Noise prediction ``eps [N, C, h, w]`` for ``x_t [N, C, h, w]``, ``t [N]`` int64 and
        ``embeddings [N, ...]`` (one row per input: callers batch several prompts in one call)."""

    # ---- helpers shared by all priors -------------------------------------------------------------
    def add_noise(self, x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x + sqrt(1 - abar_t) noise`` for ``t [B]``."""
        abar = self.alphas_cumprod.to(x.device)[t].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        return abar.sqrt() * x + (1 - abar).sqrt() * noise

    @property
    def cache_key(self) -> str:
        """Identity of the text encoder for the embedding cache (default: ``name``).

        Priors whose weights can differ under one name (in-memory components) override it with a
        weight fingerprint.
        """
        return self.name

    def cached_embed(self, prompts: list[str], compute: Callable[[list[str]], torch.Tensor]) -> torch.Tensor:
        """Embeddings ``[P, ...]`` for ``prompts``, computing only those not cached.

        Looks each prompt up in memory, then in ``embedding_cache`` (disk); calls
        ``compute(missing_prompts) -> [M, ...]`` once for the rest and stores the results in both.
        Returned rows are on ``device``.
        """
        memo: dict[tuple[str, str], torch.Tensor] = self.__dict__.setdefault("_embedding_memo", {})
        key = self.cache_key
        missing = []
        for p in prompts:
            if (key, p) in memo:
                continue
            stored = self.embedding_cache.load(key, p) if self.embedding_cache is not None else None
            if stored is not None:
                memo[(key, p)] = stored.to(self.device)
            elif p not in missing:
                missing.append(p)
        if missing:
            with torch.no_grad():
                computed = compute(missing)
            if computed.shape[0] != len(missing):
                raise RuntimeError(f"{type(self).__name__}.embed(): the text encoder returned "
                                   f"{computed.shape[0]} "
                                   f"rows for {len(missing)} prompts")
            for p, e in zip(missing, computed, strict=True):
                e = e.detach()
                memo[(key, p)] = e.to(self.device)
                if self.embedding_cache is not None:
                    self.embedding_cache.store(key, p, e)
        return torch.stack([memo[(key, p)] for p in prompts])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, resolution={self.resolution}, "
                f"latent_space={self.latent_space}, dtype={self.dtype}, device={self.device})")
