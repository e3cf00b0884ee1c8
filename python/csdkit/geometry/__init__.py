"""Geometry representations optimized by csdkit (implicit volumes, meshes) and their regularizers."""

from .implicit_volume import ImplicitVolume, Isosurface
from .isosurface import marching_tetrahedra
from .regularizers import VolumeRegularizers, opacity_entropy_loss, orientation_loss, sparsity_loss

__all__ = ["ImplicitVolume", "Isosurface", "VolumeRegularizers", "marching_tetrahedra",
           "opacity_entropy_loss", "orientation_loss", "sparsity_loss"]
