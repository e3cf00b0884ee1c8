"""Per-prior defaults of the generation job (:func:`csdkit.pipelines.generate`): one dataclass per stage.

Two families:

* the embedded **MiniPrior** (32x32 pixels, CPU): small grids and few steps, tuned on this project's
  2-core development machine so that the whole default job finishes in minutes (``docs/generation.md``);
* **DeepFloyd IF** for the NeRF stage and **Stable Diffusion 2.1 base** for the mesh and texture stages:
  the official CSD schedules (10000 NeRF steps at 64x64 with the ``csd-nerf-if`` preset, 10000 mesh
  steps at 512x512 with ``csd-mesh-sd``), for a GPU.

Every field is serializable (numbers, tuples, strings) and is written into the run's ``config.json``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

STAGES = ("nerf", "mesh", "texture")


@dataclasses.dataclass(frozen=True)
class NerfStageConfig:
    """The NeRF stage: ImplicitVolume + VolumeRenderer + CSD.

    Attributes:
        steps: optimization steps.
        resolution: render size (pixels; the prior's resolution).
        n_samples_per_ray: marching samples along the box diagonal.
        grid_resolution: occupancy-grid cells per axis (updated every ``grid_update_every`` steps).
        batch_size: views per step.
        n_levels, log2_hashmap_size, base_resolution, per_level_scale, hidden_dim: the hash grid and MLPs.
        blob_scale, blob_std: the ``linear_blob`` density bias (Magic3D's cone: empty space outside
            ``blob_std``, so the object starts as a ball of that radius and space around it is skipped).
        lr_encoding, lr_network: Adam learning rates of the hash table and the MLPs.
        distance_range, fov_range, elevation_range: training cameras (units, degrees).
        albedo_only_steps, albedo_prob, textureless_prob: the :class:`~csdkit.render.ShadingSchedule`.
        ambient, diffuse: the lights of the lit modes (:class:`~csdkit.render.PointLights`).
        orientation, sparsity, opacity_entropy: :class:`~csdkit.geometry.VolumeRegularizers` weights
            (numbers or ``[start_step, start, end, end_step]`` schedules).
        opacity_penalty, max_coverage: size control: ``opacity_penalty * mean_b max(0, coverage_b - max_coverage)``
            with ``coverage_b`` the mean opacity of view ``b``, i.e. the fraction of the frame the object
            covers. The CSD gradient is normalized to unit norm, so the weight is on that scale (a few tens
            dominate it once the object grows past ``max_coverage``).
        guidance_preset: the guidance preset; ``guidance``: its overrides.
        background_range: grey level of each view's solid background, drawn uniformly.
        shape_init: the start shape: ``"blob"`` (the ball of radius ``blob_std``), ``"auto"`` (the prior picks
            one of :data:`~csdkit.pipelines.start_shape.START_SHAPES` from its own samples of the prompt; the
            MiniPrior default), a built-in mesh
            (``"@torus"``, ``"@cube"``, ``"@vase"``, ...) or a mesh file (GLB / OBJ / PLY): the density bias is then
            :class:`~csdkit.geometry.MeshDensityBias` of that mesh (threestudio's ``shape_init``), with the
            same ``blob_scale`` / ``blob_std`` slope as the blob.
        shape_size: half of the largest side the ``shape_init`` mesh is scaled to (world units).
    """

    steps: int
    resolution: int
    n_samples_per_ray: int
    grid_resolution: int
    batch_size: int
    n_levels: int
    log2_hashmap_size: int
    base_resolution: int
    per_level_scale: float
    hidden_dim: int
    blob_scale: float
    blob_std: float
    lr_encoding: float
    lr_network: float
    distance_range: tuple[float, float]
    fov_range: tuple[float, float]
    elevation_range: tuple[float, float]
    albedo_only_steps: int
    albedo_prob: float
    textureless_prob: float
    ambient: float
    diffuse: float
    orientation: Any
    sparsity: Any
    opacity_entropy: Any
    opacity_penalty: Any
    guidance_preset: str
    guidance: dict
    max_coverage: float = 1.0
    background_range: tuple[float, float] = (0.2, 0.8)
    grid_update_every: int = 4
    shape_init: str = "blob"
    shape_size: float = 0.85


@dataclasses.dataclass(frozen=True)
class MeshStageConfig:
    """The mesh stage: DMTet initialized from the NeRF, refined with CSD through the MeshRenderer.

    Attributes:
        steps: optimization steps.
        tet_resolution: DMTet grid cubes per axis.
        resolution: render size (pixels).
        batch_size: views per step.
        lr_sdf, lr_deformation, lr_color: Adam learning rates of the SDF, the vertex offsets and the
            colour field (the NeRF's albedo network, fine-tuned at the mesh vertices).
        shading: ``{"lambertian": p, "textureless": p, "normal": p}`` probabilities of each render mode.
        normal_consistency, laplacian, sdf_entropy: regularizer weights.
        distance_range, fov_range: training cameras.
        guidance_preset, guidance: the guidance preset and its overrides.
        min_component_fraction: floaters smaller than this fraction of the largest part are dropped.
        max_faces: the mesh is decimated to this many faces before texturing when it has more.
        antialias: antialias the renders at silhouettes (:func:`csdkit.ops.antialias`), so the outline
            gives the SDF and the deformation a gradient; without it only shading moves the surface.
        sdf_smoothing: standard deviation in grid cells of a Gaussian blur of the SDF taken from the NeRF
            (:func:`csdkit.geometry.tet_grid.blur_lattice`), which removes the sub-cell bumps of the NeRF's
            density before refinement (0: off).
        gradient_smoothing: standard deviation in grid cells of the Gaussian that averages the SDF and
            deformation gradients over the surface's grid vertices each step
            (:func:`csdkit.geometry.tet_grid.smooth_surface_gradient`; 0: off), against guidance noise
            re-roughening the surface.
        close_handles: the largest closing radius, in grid cells, that may fill thin tunnels so that the
            surface keeps the topology of the NeRF's start shape (:func:`csdkit.geometry.close_handles`,
            at the start of the stage and at export; 0: off). A tunnel wider than about twice this stays.
    """

    steps: int
    tet_resolution: int
    resolution: int
    batch_size: int
    lr_sdf: float
    lr_deformation: float
    lr_color: float
    shading: dict
    normal_consistency: float
    laplacian: float
    sdf_entropy: Any
    distance_range: tuple[float, float]
    fov_range: tuple[float, float]
    guidance_preset: str
    guidance: dict
    min_component_fraction: float = 0.05
    max_faces: int = 60000
    antialias: bool = True
    sdf_smoothing: float = 0.0
    gradient_smoothing: float = 0.0
    close_handles: int = 0


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    """All three stages (``texture_steps`` etc. feed :func:`csdkit.pipelines.texture`)."""

    nerf: NerfStageConfig
    mesh: MeshStageConfig
    texture_steps: int | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GenerateConfig:
        def tuples(cfg: dict, klass) -> dict:
            names = {f.name for f in dataclasses.fields(klass)}
            return {k: tuple(v) if k.endswith("_range") else v for k, v in cfg.items() if k in names}

        return cls(NerfStageConfig(**tuples(d["nerf"], NerfStageConfig)),
                   MeshStageConfig(**tuples(d["mesh"], MeshStageConfig)), d.get("texture_steps"))

    def with_steps(self, nerf: int | None = None, mesh: int | None = None,
                   texture: int | None = None) -> GenerateConfig:
        """A copy with other step counts (None keeps the current one)."""
        return GenerateConfig(self.nerf if nerf is None else dataclasses.replace(self.nerf, steps=nerf),
                              self.mesh if mesh is None else dataclasses.replace(self.mesh, steps=mesh),
                              self.texture_steps if texture is None else texture)


#: MiniPrior (32x32, CPU). Cameras and lights mirror its training renders (camera at 3.4 units, 40 degree
#: lens, 45-60% ambient light); the prior picks the start shape from its own samples of the prompt
#: (``shape_init="auto"``: a ball start stays a ball, so a torus needs a ring start) and the coverage
#: penalty keeps the object from growing over the frame (without it "a red cube" grows into the whole box).
MINI_GENERATE = GenerateConfig(
    nerf=NerfStageConfig(
        steps=400, resolution=32, n_samples_per_ray=128, grid_resolution=32, batch_size=4,
        n_levels=12, log2_hashmap_size=15, base_resolution=8, per_level_scale=1.35, hidden_dim=32,
        blob_scale=10.0, blob_std=0.65, lr_encoding=3e-2, lr_network=1e-2,
        distance_range=(3.0, 3.6), fov_range=(38.0, 45.0), elevation_range=(-10.0, 60.0),
        albedo_only_steps=200, albedo_prob=0.3, textureless_prob=0.2, ambient=0.5, diffuse=0.5,
        orientation=0.0, sparsity=0.0, opacity_entropy=0.0, opacity_penalty=50.0, max_coverage=0.35,
        guidance_preset="csd-nerf-if",
        guidance={"negative_prompt": None, "negative_weight": 0.0, "t_range": [0.02, 0.98],
                  "view_prompts": False}, shape_init="auto"),
    mesh=MeshStageConfig(
        steps=150, tet_resolution=48, resolution=64, batch_size=4, lr_sdf=1e-2, lr_deformation=1e-2,
        lr_color=1e-3, shading={"lambertian": 0.7, "textureless": 0.3, "normal": 0.0},
        normal_consistency=0.1, laplacian=0.0, sdf_entropy=0.01, distance_range=(3.0, 3.6),
        fov_range=(38.0, 45.0), guidance_preset="csd-mesh-sd",
        guidance={"negative_prompt": None, "negative_weight": 0.0, "t_range": [0.02, 0.98],
                  "weighting": "uniform", "grad_normalize": True, "view_prompts": False},
        sdf_smoothing=2.0, gradient_smoothing=2.0, close_handles=3),
    texture_steps=200,
)

#: DeepFloyd IF for the NeRF stage and SD 2.1 base for the mesh (and texture) stage: the official schedules.
OFFICIAL_GENERATE = GenerateConfig(
    nerf=NerfStageConfig(
        steps=10000, resolution=64, n_samples_per_ray=512, grid_resolution=128, batch_size=1,
        n_levels=16, log2_hashmap_size=19, base_resolution=16, per_level_scale=1.447, hidden_dim=64,
        blob_scale=10.0, blob_std=0.5, lr_encoding=1e-2, lr_network=1e-3,
        distance_range=(1.5, 2.0), fov_range=(40.0, 70.0), elevation_range=(-10.0, 45.0),
        albedo_only_steps=1000, albedo_prob=0.25, textureless_prob=0.5, ambient=0.1, diffuse=0.9,
        orientation=[0, 10.0, 1000.0, 5000], sparsity=1.0, opacity_entropy=0.0, opacity_penalty=0.0,
        guidance_preset="csd-nerf-if", guidance={}),
    mesh=MeshStageConfig(
        steps=10000, tet_resolution=128, resolution=512, batch_size=1, lr_sdf=1e-3, lr_deformation=1e-3,
        lr_color=1e-3, shading={"lambertian": 0.5, "textureless": 0.0, "normal": 0.5},
        normal_consistency=1.0, laplacian=0.0, sdf_entropy=0.0, distance_range=(1.5, 2.0),
        fov_range=(40.0, 70.0), guidance_preset="csd-mesh-sd", guidance={}),
    texture_steps=None,
)


def generate_defaults(nerf_is_mini: bool) -> GenerateConfig:
    """The MiniPrior defaults, or the official IF + SD ones."""
    return MINI_GENERATE if nerf_is_mini else OFFICIAL_GENERATE


__all__ = ["GenerateConfig", "MINI_GENERATE", "MeshStageConfig", "NerfStageConfig", "OFFICIAL_GENERATE",
           "STAGES", "generate_defaults"]
