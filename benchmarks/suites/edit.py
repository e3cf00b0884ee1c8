"""Editing: seconds per edit step and for a whole appearance edit with the defaults.

CPU: the embedded MiniPrior, 64x64 renders, 4 views, the demo vase with a red 512 texture, edited
toward "a green cylinder" away from "a red cylinder" (CSD with the source as the negative prompt,
plus the render-fidelity term: two renders per view).
CUDA: the ``sd21-base`` random-weight preset (fp16) at 512x512 renders, 1 view, 1024 texture.

Cases: ``step`` with the compiled kernels (``csdkit``) against the same step with the pure-PyTorch
reference kernels (``reference``, via CSDKIT_FORCE_REFERENCE; the baseline); ``run_default`` = one
complete ``csdkit.pipelines.edit()`` job with its default settings (not in ``--quick``; the issue's
target on the 2-core CPU is at most 60 s).
"""

from __future__ import annotations

import os

import torch

import csdkit
from csdkit.editing import DEFAULT_FIDELITY, EditableTexture, Editor
from csdkit.geometry.primitives import demo_vase
from csdkit.pipelines.models import MINI_DEFAULTS, SD_DEFAULTS
from csdkit.uv import unwrap_uv
from harness import Case


def _setup(device: str):
    if device == "cuda":
        from csdkit.guidance.priors.presets import build_prior

        prior, d = build_prior("sd21-base", device="cuda", dtype=torch.float16), SD_DEFAULTS
    else:
        from csdkit.guidance.mini import MiniPrior

        prior, d = MiniPrior(), MINI_DEFAULTS
    mesh = unwrap_uv(demo_vase(), resolution=d.texture_size)
    red = torch.zeros(d.texture_size, d.texture_size, 3)
    red[..., 0] = 1.0
    return prior, d, mesh.replace(texture=red)


def cases(device: str, quick: bool) -> list[Case]:
    prior, d, mesh = _setup(device)
    editor = Editor(prior, "a green cylinder", "a red cylinder", steps=150, resolution=d.resolution,
                    batch_size=d.batch_size, distance_range=d.distance_range, fov_range=d.fov_range,
                    t_range=d.t_range)
    view = mesh.normalized(verbose=False).to(device)
    original = mesh.texture.to(device)
    field = EditableTexture(original, torch.ones(original.shape[:2], dtype=torch.bool, device=device))
    renderer = csdkit.MeshRenderer(d.resolution)
    opt = torch.optim.Adam(field.parameters(), lr=editor.lr)
    gen = torch.Generator().manual_seed(0)

    def step():
        cams, bg, light = editor.sample_views(d.batch_size, gen, torch.device(device))
        kw = dict(shading="lambertian", background=bg, light_dir=light, ambient=0.5, diffuse=0.5)
        rgb = renderer.render(view, cams, texture=field(), **kw)["rgb"]
        out = editor.guidance(rgb.permute(0, 3, 1, 2), step=0, generator=gen, cameras=cams)
        with torch.no_grad():
            ref = renderer.render(view, cams, texture=original, **kw)["rgb"]
        loss = out.loss + editor.fidelity_loss(rgb, ref, DEFAULT_FIDELITY)
        opt.zero_grad(set_to_none=True)
        loss.backward()
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
        from csdkit.pipelines.edit import edit

        def full_run():
            edit(mesh, "a green cylinder", source_prompt="a red cylinder", prior=prior, device=device,
                 progress=False, quiet=True)

        out.append(Case("run_default", "csdkit", full_run, 1, repeats=1, warmup=0))
    return out
