"""Generation (``csdkit.generate``): seconds per step of each stage, and the default job end to end.

CPU: the embedded MiniPrior with the job's default stage settings (``MINI_GENERATE``). CUDA: the
random-weight ``if-i-xl`` (NeRF stage) and ``sd21-base`` (mesh stage) presets with the official settings
(``OFFICIAL_GENERATE``: 64x64 NeRF renders with 512 samples, 512x512 mesh renders); ``peak MB`` is then the
CUDA peak of each case.

Cases:

* ``nerf_step_albedo`` / ``nerf_step_shaded``: one NeRF-stage step (grid update, render, CSD, regularizers,
  backward, Adam) with albedo / lambertian shading. Lambertian needs normals: finite differences through the
  compiled hash-grid kernels (``csdkit``), against the same step on the pure-PyTorch reference kernels
  (``reference``, CSDKIT_FORCE_REFERENCE=1: the baseline) and, for the shaded step, analytic normals
  (``analytic``: autograd normals, which need the twice-differentiable PyTorch hash grid in training).
* ``nerf_step_shaded_64`` (CPU): the same shaded step at the official NeRF-stage render size (64x64, 512
  samples, 16-level hash grid), finite differences (``csdkit``) against analytic normals (the baseline).
* ``mesh_step``: one mesh-stage step (DMTet extraction, coloured render, CSD, regularizers, backward, Adam),
  compiled vs reference.
* ``nerf_preview``: the NeRF stage's preview (4 orbit views at 64x64: albedo, and the shaded shape by
  ``shade_expected_surface``), against the same views with every sample shaded textureless, every normal
  computed and 65536-ray chunks (``per_sample``, the baseline: the preview before stop 28).
* ``start_shape_choice``: the default start-shape pick (``shape_init="auto"``: 8 samples of the prompt by the
  NeRF-stage prior, named by its zero-shot classifier; ``n`` is the number of samples), timed once.
* ``run_default`` (not with ``--quick``): one complete default ``csdkit.generate`` (all three stages, MiniPrior,
  writes a run directory in a temporary folder); the stage times are printed to stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile

import torch

from csdkit.pipelines.generate_config import MINI_GENERATE, OFFICIAL_GENERATE
from csdkit.pipelines.generate_mesh import MeshStage
from csdkit.pipelines.generate_nerf import NerfStage
from csdkit.pipelines.start_shape import choose_start_shape
from csdkit.render import Cameras, PointLights, ShadingSchedule, VolumeRenderer
from harness import Case

PROMPT = "a yellow torus"


@contextlib.contextmanager
def force_reference():
    old = os.environ.get("CSDKIT_FORCE_REFERENCE")
    os.environ["CSDKIT_FORCE_REFERENCE"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["CSDKIT_FORCE_REFERENCE"]
        else:
            os.environ["CSDKIT_FORCE_REFERENCE"] = old


def _priors(device: str):
    if device == "cuda":
        from csdkit.guidance.priors.presets import build_prior

        return (build_prior("if-i-xl", device="cuda", dtype=torch.float16),
                build_prior("sd21-base", device="cuda", dtype=torch.float16), OFFICIAL_GENERATE)
    from csdkit.guidance.mini import MiniPrior

    prior = MiniPrior()
    return prior, prior, MINI_GENERATE


def _stepper(stage, shading: str | None):
    """A timed call: one optimizer step of ``stage``; a NeRF stage renders with ``shading`` at every step."""
    if shading is not None:
        stage.shading = (ShadingSchedule(albedo_only_steps=10**9) if shading == "albedo"
                         else ShadingSchedule(albedo_only_steps=0, albedo_prob=0.0, textureless_prob=0.0))
    counter = [0]

    def run():
        step = counter[0]
        counter[0] += 1
        stage.optimizer.zero_grad(set_to_none=True)
        loss, _ = stage.step(step)
        loss.backward()
        stage.optimizer.step()

    return run


def _per_sample_preview(stage: NerfStage, n: int = 4, size: int = 64):
    """The baseline of ``nerf_preview``: albedo and per-sample textureless renders of the stage's orbit views,
    every normal computed (``normal_weight_eps=0``) in chunks of 65536 rays, with the stage's occupancy grid."""
    c = stage.cfg
    renderer = VolumeRenderer(size, c.n_samples_per_ray, grid=stage.grid, normal_weight_eps=0.0, chunk_rays=1 << 16)
    cams = Cameras.orbit(n, elevation=15.0, distance=sum(c.distance_range) / 2,
                         fov_y=sum(c.fov_range) / 2).to(stage.device)
    lights = PointLights.at(cams.position, ambient=c.ambient, diffuse=c.diffuse)

    def run():
        with torch.no_grad():
            for mode in ("albedo", "textureless"):
                renderer.render(stage.volume, cams, shading=mode, lights=lights, background=0.5)

    return run


def cases(device: str, quick: bool) -> list[Case]:
    torch.set_num_threads(1)  # what ``csdkit generate`` uses by default (--threads 1)
    nerf_prior, mesh_prior, cfg = _priors(device)
    dev = torch.device(device)
    # The start shape is picked once (the MiniPrior default, shape_init "auto"): every step case starts from
    # the shape a default run starts from, and the pick itself is timed.
    choice = choose_start_shape(nerf_prior, PROMPT)
    if cfg.nerf.shape_init == "auto":
        cfg = dataclasses.replace(cfg, nerf=dataclasses.replace(cfg.nerf, shape_init=choice.shape_init))
    print(f"  generate/start_shape_choice: {PROMPT!r} -> {choice.name}", file=sys.stderr)
    out: list[Case] = [Case("start_shape_choice", "csdkit", lambda: choose_start_shape(nerf_prior, PROMPT), 8,
                            repeats=1, warmup=0)]
    for shading in ("albedo", "lambertian"):
        name = "nerf_step_albedo" if shading == "albedo" else "nerf_step_shaded"
        fast = NerfStage(PROMPT, nerf_prior, cfg.nerf, dev, seed=0)
        ref = NerfStage(PROMPT, nerf_prior, cfg.nerf, dev, seed=0)
        fast_step, ref_step = _stepper(fast, shading), _stepper(ref, shading)

        def reference(ref_step=ref_step):
            with force_reference():
                ref_step()

        out += [Case(name, "csdkit", fast_step, cfg.nerf.batch_size, repeats=6, warmup=2),
                Case(name, "reference", reference, cfg.nerf.batch_size, baseline=True, repeats=3, warmup=1)]
        if shading == "lambertian" and device == "cpu":
            ana = NerfStage(PROMPT, nerf_prior, cfg.nerf, dev, seed=0)
            ana.volume.normal_type = "analytic"
            out.append(Case(name, "analytic", _stepper(ana, shading), cfg.nerf.batch_size, repeats=2, warmup=1))

    if device == "cpu":
        # The official NeRF-stage render (64x64, 512 samples, 16-level 2^19 hash grid) on the MiniPrior: the
        # step the issue measured at 39-50 s with analytic normals, against finite differences.
        big = dataclasses.replace(OFFICIAL_GENERATE.nerf, guidance=cfg.nerf.guidance, batch_size=1)
        fd64 = NerfStage(PROMPT, nerf_prior, big, dev, seed=0)
        an64 = NerfStage(PROMPT, nerf_prior, big, dev, seed=0)
        an64.volume.normal_type = "analytic"
        out += [Case("nerf_step_shaded_64", "csdkit", _stepper(fd64, "lambertian"), 1, repeats=3, warmup=1),
                Case("nerf_step_shaded_64", "analytic", _stepper(an64, "lambertian"), 1, baseline=True,
                     repeats=1, warmup=0)]

    base = NerfStage(PROMPT, nerf_prior, dataclasses.replace(cfg.nerf, steps=1), dev, seed=0)
    out += [Case("nerf_preview", "csdkit", base.preview, 4, repeats=3, warmup=1),
            Case("nerf_preview", "per_sample", _per_sample_preview(base), 4, baseline=True, repeats=3, warmup=1)]
    fast_mesh = MeshStage(PROMPT, mesh_prior, cfg.mesh, base.volume, dev, seed=1)
    ref_mesh = MeshStage(PROMPT, mesh_prior, cfg.mesh,
                         NerfStage(PROMPT, nerf_prior, cfg.nerf, dev, seed=0).volume, dev, seed=1)
    fast_mesh_step, ref_mesh_step = _stepper(fast_mesh, None), _stepper(ref_mesh, None)

    def reference_mesh():
        with force_reference():
            ref_mesh_step()

    out += [Case("mesh_step", "csdkit", fast_mesh_step, cfg.mesh.batch_size, repeats=6, warmup=2),
            Case("mesh_step", "reference", reference_mesh, cfg.mesh.batch_size, baseline=True, repeats=3,
                 warmup=1)]

    if not quick and device == "cpu":
        from csdkit.pipelines import generate

        def full_run():
            with tempfile.TemporaryDirectory() as tmp:
                result = generate(PROMPT, out_dir=tmp, model=nerf_prior, progress=False, quiet=True)
            for stage, info in result.stages.items():
                print(f"  generate/run_default {stage}: {info['steps']} steps, {info['seconds']:.1f} s, "
                      f"{info['seconds_per_step']:.3f} s/step", file=sys.stderr)

        steps = cfg.nerf.steps + cfg.mesh.steps + (cfg.texture_steps or 0)
        out.append(Case("run_default", "csdkit", full_run, steps, repeats=1, warmup=0))
    return out
