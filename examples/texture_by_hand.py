"""The texturing job wired by hand: what ``csdkit.texture()`` does, in ~40 lines.

    python examples/texture_by_hand.py [--steps 150] [--out runs/by_hand]

Every piece is a public object: a TexturedMesh (UV atlas + learnable texture), random Cameras,
the MeshRenderer, CSD guidance on a prior, Adam, and the shared Trainer loop (progress bar,
metrics, checkpoints, previews). Swap any of them: another mesh, ``StableDiffusion(...)`` as the
prior, the ``sds`` preset instead of CSD, your own camera distribution.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import csdkit
from csdkit.geometry.primitives import demo_vase
from csdkit.guidance.mini import MiniPrior
from csdkit.guidance.presets import guidance_preset
from csdkit.training import RunDirectory, Trainer, image_grid
from csdkit.uv.textured_mesh import TexturedMesh

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=150)
ap.add_argument("--out", type=Path, default=Path("runs/by_hand"))
args = ap.parse_args()

torch.manual_seed(0)
prior = MiniPrior()                                              # embedded; no download
geometry = TexturedMesh(demo_vase(), texture_size=256)           # xatlas runs in a subprocess
renderer = csdkit.MeshRenderer(64)
guidance = guidance_preset("csd-mesh-sd", prior, "a blue cylinder", negative_prompt=None,
                           negative_weight=0.0, view_prompts=False, t_range=[0.02, 0.98])
optimizer = torch.optim.Adam(geometry.parameters(), lr=0.03, betas=(0.9, 0.99), eps=1e-15)
generator = torch.Generator().manual_seed(0)


def step_fn(step: int):
    cams = csdkit.Cameras.sample(4, distance_range=(3.0, 3.6), fov_range=(38, 45), generator=generator)
    background = (0.2 + 0.6 * torch.rand(4, 1, generator=generator)).expand(4, 3)
    rgb = renderer.render(geometry, cams, shading="lambertian", background=background,
                          light_dir=cams.position, ambient=0.5, diffuse=0.5)["rgb"]
    out = guidance(rgb.permute(0, 3, 1, 2), step=step, generator=generator, cameras=cams)
    return out.loss, {"grad_norm": out.grad_norm, "t": float(out.t.float().mean())}


ring = csdkit.Cameras.orbit(4, distance=3.3, fov_y=42)
run = RunDirectory(args.out)
trainer = Trainer(step_fn, modules={"texture": geometry.field}, optimizers={"adam": optimizer},
                  total_steps=args.steps, generator=generator, run_dir=run, checkpoint_every=50,
                  preview_every=50, preview_fn=lambda s: image_grid(
                      renderer.render(geometry, ring, background=0.5)["rgb"].detach(), columns=4))
trainer.run(resume=True)                                          # picks up a previous run of the same folder
print("wrote", geometry.export(args.out / "vase.glb"))
