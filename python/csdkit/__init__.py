"""csdkit: text-guided 3D content with Classifier Score Distillation (Yu et al., ICLR 2024).

Texturing (mesh + prompt -> UV-textured mesh), generation (prompt -> NeRF -> mesh) and editing,
on a C++/CUDA kernel core (hash-grid encoding, volume rendering, rasterization, marching tets)::

    import csdkit
    result = csdkit.texture("chair.glb", "a wooden chair", out_dir="runs/chair")   # the texturing job
    asset = csdkit.generate("a yellow torus", out_dir="runs/torus")                  # prompt -> textured mesh
    done = csdkit.batch("library.jsonl", "runs/library")                          # a manifest of jobs
    prior = csdkit.MiniPrior()                                                     # embedded toy prior

Packages, bottom to top (each imports only from those below it; ``guidance`` stands apart):
``ops``/``nn``/``training`` -> ``geometry`` -> ``io`` -> ``uv`` -> ``render`` -> ``editing`` ->
``pipelines`` -> ``cli``. See the README's architecture section.
"""

from __future__ import annotations

from . import io, uv
from ._build import build_info, has_cuda, set_num_threads
from ._version import __version__
from .editing import Editor, EditResult, Region
from .geometry import DMTet, ImplicitVolume, Mesh, VolumeRegularizers
from .guidance import CSD, SDS, Schedule
from .guidance.mini import MiniPrior
from .nn import HashGridEncoding
from .ops.occupancy_grid import OccupancyGrid

# edit(): the job, shadows the package
from .pipelines import BatchResult, GenerateResult, TextureResult, batch, edit, generate, texture
from .render import (
    Cameras,
    MeshRenderer,
    NeuralEnvironmentMap,
    PointLights,
    ShadingSchedule,
    SolidBackground,
    VolumeRenderer,
)
from .uv import TexturedMesh

__all__ = [
    "CSD",
    "BatchResult",
    "SDS",
    "Cameras",
    "DMTet",
    "EditResult",
    "Editor",
    "GenerateResult",
    "HashGridEncoding",
    "ImplicitVolume",
    "Mesh",
    "MeshRenderer",
    "MiniPrior",
    "NeuralEnvironmentMap",
    "OccupancyGrid",
    "PointLights",
    "Region",
    "Schedule",
    "ShadingSchedule",
    "SolidBackground",
    "TextureResult",
    "TexturedMesh",
    "VolumeRegularizers",
    "VolumeRenderer",
    "__version__",
    "batch",
    "build_info",
    "edit",
    "generate",
    "has_cuda",
    "io",
    "set_num_threads",
    "texture",
    "uv",
]
