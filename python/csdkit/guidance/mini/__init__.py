"""MiniPrior: csdkit's small embedded text-to-image diffusion model (a toy that knows colours,
patterns and primitive shapes), its procedural training data, training script and evaluation."""

from .prior import DEFAULT_PRIOR_NOTICE, MiniPrior

__all__ = ["DEFAULT_PRIOR_NOTICE", "MiniPrior"]
