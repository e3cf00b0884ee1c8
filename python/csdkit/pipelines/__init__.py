"""The jobs: short functions that wire geometry, renderer, guidance and the Trainer together."""

from ..edit import EditResult
from .edit import edit
from .texture import TextureResult, texture

__all__ = ["EditResult", "TextureResult", "edit", "texture"]
