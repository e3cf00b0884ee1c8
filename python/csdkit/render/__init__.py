"""Renderers (mesh, volume), cameras, shading and backgrounds.

Layer 4: a renderer renders any geometry that follows its protocol (:mod:`csdkit.render.protocols`):
``MeshRenderer.render(mesh_or_textured_surface, cameras)``, ``VolumeRenderer.render(density_field, cameras)``.
"""

from .background import Background, NeuralEnvironmentMap, SolidBackground
from .cameras import Cameras
from .mesh_renderer import MeshRenderer
from .protocols import DensityField, TexturedSurface
from .shading import SHADING_MODES, PointLights, ShadingSchedule, shade
from .volume_renderer import VolumeRenderer, shade_expected_surface

__all__ = ["SHADING_MODES", "Background", "Cameras", "DensityField", "MeshRenderer", "NeuralEnvironmentMap",
           "PointLights", "ShadingSchedule", "SolidBackground", "TexturedSurface", "VolumeRenderer", "shade",
           "shade_expected_surface"]
