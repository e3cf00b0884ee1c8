"""Diffusion priors behind one interface, :class:`DiffusionPrior`.

* :class:`StableDiffusion` (latent space, VAE) and :class:`DeepFloydIF` (pixel space, 64x64),
  loaded from local weights or built ``from_components``;
* :func:`build_prior` with an architecture preset (``sd21-base``, ``if-i-xl``, ``sd-tiny``,
  ``if-tiny``): random weights of real sizes, for benchmarks and tests;
* :class:`EmbeddingCache`: text embeddings on disk, keyed by model and prompt.
"""

from .base import DiffusionPrior
from .byte_tokenizer import byte_tokenizer
from .deepfloyd_if import DeepFloydIF
from .embedding_cache import EmbeddingCache
from .loading import ModelWeightsNotFoundError
from .presets import ARCHITECTURES, build_components, build_prior, preset_names
from .stable_diffusion import StableDiffusion

__all__ = [
    "ARCHITECTURES",
    "DeepFloydIF",
    "DiffusionPrior",
    "EmbeddingCache",
    "ModelWeightsNotFoundError",
    "StableDiffusion",
    "build_components",
    "build_prior",
    "byte_tokenizer",
    "preset_names",
]
