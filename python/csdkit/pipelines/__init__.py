"""The jobs: short functions that wire geometry, renderer, guidance and the Trainer together."""

from .batch import BatchResult, batch
from .texture import TextureResult, texture

__all__ = ["BatchResult", "TextureResult", "batch", "texture"]
