"""MiniPrior: csdkit's small embedded text-to-image diffusion model (a toy that knows colours,
patterns and primitive shapes), its procedural training data, training script and evaluation."""

from .prior import MiniPrior

__all__ = ["MiniPrior"]
