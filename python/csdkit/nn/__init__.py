"""Neural-field building blocks (torch.nn modules)."""

from .hash_grid_encoding import HashGridEncoding

__all__ = ["HashGridEncoding"]
