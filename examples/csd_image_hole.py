"""CSD in pixel space: the MiniPrior cuts a hole into images of a ball when asked for a torus.

This is the 2D control for the NeRF experiments in docs/generation.md ("Why the hole does not form").
Four MiniPrior training-style renders of a yellow ball (32x32, shaded, grey backgrounds) are optimized
directly, one logit per pixel and channel, with plain CSD toward the prompt (Adam, normalized gradient).
The script writes the start images (top row) and the results (bottom row) to one PNG and prints the mean
brightness of the centre 4x4 pixels before and after. A hole replaces the yellow centre with something
darker than the ring around it.

    PYTHONPATH=python python examples/csd_image_hole.py [--prompt "a yellow torus"] [--steps 400] \\
        [--out csd_image_hole.png]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from csdkit.guidance import CSD
from csdkit.guidance.mini import MiniPrior
from csdkit.guidance.mini.data import COLORS, SHAPES, render_scenes, sample_scenes


def centre_brightness(images: torch.Tensor) -> float:
    """Mean value of the centre 4x4 pixels of ``images [B, 3, 32, 32]``."""
    return float(images[:, :, 14:18, 14:18].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default="a yellow torus")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="csd_image_hole.png")
    args = parser.parse_args()

    prior = MiniPrior()
    g = torch.Generator().manual_seed(args.seed)
    scenes = sample_scenes(4, g, p_solid=1.0)
    scenes.shape.fill_(SHAPES.index("sphere"))
    scenes.color1.fill_(COLORS.index("yellow"))
    start = render_scenes(scenes, prior.resolution, g)

    logits = torch.logit(start.clamp(0.01, 0.99)).clone().requires_grad_(True)
    guidance = CSD(prior, args.prompt, t_range=(0.02, 0.98), grad_normalize=True)
    optimizer = torch.optim.Adam([logits], lr=args.lr)
    step_gen = torch.Generator().manual_seed(args.seed + 1)
    for step in range(args.steps):
        out = guidance(torch.sigmoid(logits), step=step, generator=step_gen)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()

    result = torch.sigmoid(logits).detach()
    print(f"centre brightness: start {centre_brightness(start):.3f}, after {args.steps} steps "
          f"{centre_brightness(result):.3f}")
    grid = torch.cat([torch.cat(list(start), 2), torch.cat(list(result), 2)], 1)
    pixels = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).resize((grid.shape[2] * 4, grid.shape[1] * 4), Image.NEAREST).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
