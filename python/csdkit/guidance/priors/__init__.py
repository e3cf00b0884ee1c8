"""Diffusion priors behind one interface, :class:`DiffusionPrior`."""

from .base import DiffusionPrior

__all__ = ["DiffusionPrior"]
