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
