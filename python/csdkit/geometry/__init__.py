"""Geometry: :class:`Mesh` (triangle mesh with UVs, colours, texture), :class:`ImplicitVolume` (hash-grid
NeRF), :class:`DMTet` (deformable tet grid, :func:`tet_grid`), isosurfaces, regularizers, topology
(:func:`euler_characteristic`, :func:`close_handles`) and procedural primitives.

Layer 2: imports ``ops`` and ``nn`` only. File formats are :mod:`csdkit.io`, UV atlases and
learnable textures :mod:`csdkit.uv`, renderers :mod:`csdkit.render` (all above this package).
"""

from .dmtet import DMTet
from .implicit_volume import ImplicitVolume, Isosurface
from .isosurface import marching_tetrahedra
from .mesh import Mesh, MeshWarning
from .regularizers import VolumeRegularizers, opacity_entropy_loss, orientation_loss, sparsity_loss
from .shape_bias import MeshDensityBias
from .tet_grid import tet_grid
from .topology import close_handles, euler_characteristic

__all__ = ["DMTet", "ImplicitVolume", "Isosurface", "Mesh", "MeshDensityBias", "MeshWarning", "VolumeRegularizers",
           "close_handles", "euler_characteristic", "marching_tetrahedra", "opacity_entropy_loss", "orientation_loss",
           "sparsity_loss", "tet_grid"]
