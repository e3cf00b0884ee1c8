"""Renderers (mesh, volume), cameras, shading and backgrounds."""

from .background import Background, NeuralEnvironmentMap, SolidBackground
from .cameras import Cameras
from .mesh_renderer import MeshRenderer
from .shading import SHADING_MODES, PointLights, ShadingSchedule, shade
from .volume_renderer import VolumeRenderer

__all__ = ["SHADING_MODES", "Background", "Cameras", "MeshRenderer", "NeuralEnvironmentMap", "PointLights",
           "ShadingSchedule", "SolidBackground", "VolumeRenderer", "shade"]
