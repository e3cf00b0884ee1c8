"""The jobs: short functions that wire geometry, renderer, guidance and the Trainer together."""

from ..editing import EditResult
from .batch import BatchResult, batch
from .edit import edit
from .generate import GenerateResult, generate
from .texture import TextureResult, texture

__all__ = ["BatchResult", "EditResult", "GenerateResult", "TextureResult", "batch", "edit", "generate", "texture"]
