"""Score-distillation guidance (CSD, SDS) and the diffusion priors it queries."""

from .priors import DiffusionPrior

__all__ = ["DiffusionPrior"]
