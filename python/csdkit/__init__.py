"""csdkit: text-guided 3D content with Classifier Score Distillation (Yu et al., ICLR 2024).

Texturing (mesh + prompt -> UV-textured mesh), generation (prompt -> NeRF -> mesh) and editing,
on a C++/CUDA kernel core (hash-grid encoding, volume rendering, rasterization, marching tets).
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._build import build_info, has_cuda, set_num_threads
from .nn import HashGridEncoding
from .render.cameras import Cameras

__all__ = ["Cameras", "HashGridEncoding", "__version__", "build_info", "has_cuda", "set_num_threads"]

from .ops.occupancy_grid import OccupancyGrid  # noqa: E402

__all__ += ["OccupancyGrid"]

# ---- NeRF stage: implicit volume, volume renderer, shading, backgrounds, regularizers
from .geometry.implicit_volume import ImplicitVolume  # noqa: E402
from .geometry.regularizers import VolumeRegularizers  # noqa: E402
from .render.background import NeuralEnvironmentMap, SolidBackground  # noqa: E402
from .render.shading import PointLights, ShadingSchedule  # noqa: E402
from .render.volume_renderer import VolumeRenderer  # noqa: E402

__all__ += ["ImplicitVolume", "NeuralEnvironmentMap", "PointLights", "ShadingSchedule", "SolidBackground",
            "VolumeRegularizers", "VolumeRenderer"]
