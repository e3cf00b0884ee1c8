"""The jobs: short functions that wire geometry, renderer, guidance and the Trainer together."""

from .generate import GenerateResult, generate
from .texture import TextureResult, texture

__all__ = ["GenerateResult", "TextureResult", "generate", "texture"]
