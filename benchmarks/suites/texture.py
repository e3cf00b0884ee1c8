"""Texturing: seconds per optimization step and for a whole default run.

CPU: the embedded MiniPrior, 64x64 renders, 4 views, a 512 texture on the demo vase.
CUDA: the ``sd21-base`` random-weight preset (fp16) at 512x512 renders, 1 view, a 1024 texture.

Cases: ``step`` with the compiled kernels (``csdkit``) against the same step with the pure-PyTorch
reference kernels (``reference``, via CSDKIT_FORCE_REFERENCE; the baseline); ``run_default`` = one
complete ``csdkit.texture()`` job with its default step count (not in ``--quick``).
"""

from __future__ import annotations

import os

import torch

import csdkit
from csdkit.geometry.primitives import demo_vase
from csdkit.guidance.presets import guidance_preset
from csdkit.pipelines.models import MINI_DEFAULTS, SD_DEFAULTS
from csdkit.uv.textured_mesh import TexturedMesh
from harness import Case


def _setup(device: str):
    if device == "cuda":
        from csdkit.guidance.priors.presets import build_prior

        prior, d = build_prior("sd21-base", device="cuda", dtype=torch.float16), SD_DEFAULTS
    else:
        from csdkit.guidance.mini import MiniPrior

        prior, d = MiniPrior(), MINI_DEFAULTS
    geometry = TexturedMesh(demo_vase(), texture_size=d.texture_size).to(device)
    geometry.mesh = geometry.mesh.to(device)
    guidance = guidance_preset("csd-mesh-sd", prior, "a blue cylinder", negative_prompt=d.negative_prompt,
                               negative_weight=[0, 1.0, 0.5, d.steps] if d.negative_prompt else 0.0,
                               t_range=list(d.t_range), view_prompts=False)
    return prior, d, geometry, guidance


def cases(device: str, quick: bool) -> list[Case]:
    prior, d, geometry, guidance = _setup(device)
    renderer = csdkit.MeshRenderer(d.resolution)
    opt = torch.optim.Adam(geometry.parameters(), lr=d.lr)
    gen = torch.Generator().manual_seed(0)

    def step():
        cams = csdkit.Cameras.sample(d.batch_size, distance_range=d.distance_range, fov_range=d.fov_range,
                                     generator=gen).to(device)
        rgb = renderer.render(geometry, cams, shading="lambertian", background=0.5)["rgb"]
        out = guidance(rgb.permute(0, 3, 1, 2), step=0, generator=gen, cameras=cams)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    def reference_step():
        os.environ["CSDKIT_FORCE_REFERENCE"] = "1"
        try:
            step()
        finally:
            os.environ.pop("CSDKIT_FORCE_REFERENCE", None)

    out = [Case("step", "csdkit", step, d.batch_size, repeats=10),
           Case("step", "reference", reference_step, d.batch_size, baseline=True, repeats=3)]
    if not quick:
        from csdkit.pipelines import texture

        def full_run():
            texture("@vase", "a blue cylinder", prior=prior, device=device, progress=False, quiet=True,
                    formats=())

        out.append(Case("run_default", "csdkit", full_run, d.steps, repeats=1, warmup=0))
    return out
