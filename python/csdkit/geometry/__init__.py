"""Geometry: :class:`Mesh` (triangle mesh with UVs, colours, texture), :class:`TexturedMesh` (a mesh with a
learnable texture), :class:`ImplicitVolume` (hash-grid NeRF), isosurfaces, :class:`DMTet` with :func:`tet_grid`,
and regularizers."""

from .dmtet import DMTet
from .implicit_volume import ImplicitVolume, Isosurface
from .isosurface import marching_tetrahedra
from .mesh import Mesh, MeshWarning
from .regularizers import VolumeRegularizers, opacity_entropy_loss, orientation_loss, sparsity_loss
from .tet_grid import tet_grid
from .textured_mesh import TexturedMesh

__all__ = ["DMTet", "ImplicitVolume", "Isosurface", "Mesh", "MeshWarning", "TexturedMesh", "VolumeRegularizers",
           "marching_tetrahedra", "opacity_entropy_loss", "orientation_loss", "sparsity_loss", "tet_grid"]
