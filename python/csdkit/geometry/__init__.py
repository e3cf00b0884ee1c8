"""Geometry containers: :class:`Mesh` (triangle mesh with UVs, colours, texture), its I/O and clean-up."""

from .mesh import Mesh, MeshWarning

__all__ = ["Mesh", "MeshWarning"]
