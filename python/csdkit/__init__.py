"""csdkit: text-guided 3D content with Classifier Score Distillation (Yu et al., ICLR 2024).

Texturing (mesh + prompt -> UV-textured mesh), generation (prompt -> NeRF -> mesh) and editing,
on a C++/CUDA kernel core (hash-grid encoding, volume rendering, rasterization, marching tets).

``csdkit.texture(mesh, prompt, ...)`` runs the texturing job; ``csdkit.texture`` is also the
package of UV-atlas, baking and export tools (``csdkit.texture.unwrap_uv`` ...).
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import texture
from ._build import build_info, has_cuda, set_num_threads
from .geometry import ImplicitVolume, Mesh, TexturedMesh, VolumeRegularizers
from .guidance import CSD, SDS, Schedule
from .nn import HashGridEncoding
from .ops.occupancy_grid import OccupancyGrid
from .pipelines import TextureResult
from .render import (
    Cameras,
    MeshRenderer,
    NeuralEnvironmentMap,
    PointLights,
    ShadingSchedule,
    SolidBackground,
    VolumeRenderer,
)

__all__ = [
    "CSD",
    "SDS",
    "Cameras",
    "HashGridEncoding",
    "ImplicitVolume",
    "Mesh",
    "MeshRenderer",
    "NeuralEnvironmentMap",
    "OccupancyGrid",
    "PointLights",
    "Schedule",
    "ShadingSchedule",
    "SolidBackground",
    "TextureResult",
    "TexturedMesh",
    "VolumeRegularizers",
    "VolumeRenderer",
    "__version__",
    "build_info",
    "has_cuda",
    "set_num_threads",
    "texture",
]
