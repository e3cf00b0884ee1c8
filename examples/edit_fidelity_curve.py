"""The alignment / fidelity trade-off of ``csdkit.Editor``: one edit at several ``fidelity`` values.

A red demo vase (xatlas atlas, 512 texture) is edited toward "a green cylinder" away from "a red
cylinder" with the embedded MiniPrior and the job's defaults (150 steps, 64x64 renders, 4 views),
once per fidelity value, plus once without a source prompt (plain CSD) at the default fidelity.
For each result it measures on 8 held-out orbit views (albedo renders):

* ``render_change``: mean absolute difference of the edited and the original renders over the
  object (0 = unchanged; red -> green is about 0.7);
* ``green``: the fraction of object pixels whose nearest MiniPrior palette colour is green
  (alignment with the target);
* ``red``: the fraction still nearest to red.

    PYTHONPATH=python python examples/edit_fidelity_curve.py [--steps 150] [--json curve.json]

The table in docs/editing.md was made with this script.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import csdkit
from csdkit.editing import DEFAULT_FIDELITY, Editor
from csdkit.geometry.primitives import demo_vase
from csdkit.guidance.mini.data import PALETTE
from csdkit.pipelines.models import MINI_DEFAULTS as D
from csdkit.uv import unwrap_uv

NAMES = list(PALETTE)
COLORS = torch.tensor([PALETTE[n] for n in NAMES])


def palette_fractions(mesh: csdkit.Mesh, editor: Editor) -> dict[str, float]:
    cams = editor.eval_cameras(8, torch.device("cpu"))
    view = mesh.normalized(verbose=False)
    out = csdkit.MeshRenderer(64).render(view, cams, shading="albedo", background=0.0)
    px = out["rgb"][out["mask"][..., 0] > 0]
    nearest = (px[:, None, :] - COLORS[None]).norm(dim=-1).argmin(dim=1)
    return {name: float((nearest == NAMES.index(name)).float().mean()) for name in ("green", "red")}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--fidelity", type=float, nargs="*", default=[0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    mesh = unwrap_uv(demo_vase(), resolution=D.texture_size)
    red = torch.zeros(D.texture_size, D.texture_size, 3)
    red[..., 0] = 1.0
    mesh = mesh.replace(texture=red)
    prior = csdkit.MiniPrior()
    settings = dict(steps=args.steps, resolution=D.resolution, batch_size=D.batch_size, t_range=D.t_range,
                    distance_range=D.distance_range, fov_range=D.fov_range, seed=args.seed)
    runs = [("a red cylinder", f) for f in args.fidelity] + [(None, DEFAULT_FIDELITY)]
    rows = []
    print("| source prompt | fidelity | render_change | green | red | seconds |")
    print("|---|---|---|---|---|---|")
    for source, fidelity in runs:
        editor = Editor(prior, "a green cylinder", source, fidelity=fidelity, **settings)
        t0 = time.perf_counter()
        result = editor.edit(mesh, progress=False)
        seconds = time.perf_counter() - t0
        row = {"source": source, "fidelity": fidelity, "render_change": result.metrics["render_change"],
               **palette_fractions(result.asset, editor), "seconds": seconds}
        rows.append(row)
        print(f"| {source or '(none)'} | {fidelity:g} | {row['render_change']:.3f} | {row['green']:.2f} | "
              f"{row['red']:.2f} | {seconds:.0f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
