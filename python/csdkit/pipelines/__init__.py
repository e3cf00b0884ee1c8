"""The jobs: short functions that wire geometry, renderer, guidance and the Trainer together."""

from .texture import TextureResult, texture

__all__ = ["TextureResult", "texture"]
