"""Renderers and cameras: :class:`Cameras`, :class:`MeshRenderer`."""

from .cameras import Cameras
from .mesh_renderer import MeshRenderer

__all__ = ["Cameras", "MeshRenderer"]
