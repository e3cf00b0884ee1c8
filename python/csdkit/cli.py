"""The ``csdkit`` command.

    csdkit texture MESH "prompt" [options]     UV-texture a mesh with CSD
    csdkit generate "prompt" [options]         prompt -> NeRF -> DMTet mesh -> UV-textured mesh
    csdkit info                                 what this build contains

Exit codes: 0 done, 1 internal error, 2 bad input (a one-line message, no traceback),
130 interrupted by Ctrl-C (a checkpoint was written; continue with --resume).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ._build import build_info
from .pipelines.generate import generate
from .pipelines.texture import DEFAULT, texture

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _texture_parser(sub) -> None:
    p = sub.add_parser("texture", help="UV-texture a mesh from a text prompt (CSD)",
                       description="Texture MESH (GLB/GLTF, OBJ, PLY, STL, OFF) so that it matches PROMPT. "
                                   "Writes a run directory with textured.glb, textured.obj (+mtl, png), "
                                   "turntable.png, report.html, metrics and checkpoints.")
    p.add_argument("mesh", nargs="?", help="input mesh file, or @vase / @sphere / @torus (built-in); "
                                           "optional with --resume")
    p.add_argument("prompt", nargs="?", help="text prompt, e.g. \"a blue vase with white stripes\"")
    p.add_argument("--negative", default=None, help="negative prompt (default: the model's; 'none' for plain CSD)")
    p.add_argument("--model", default=None, help="mini (embedded, default), sd21, or a local model folder")
    p.add_argument("--steps", type=int, help="optimization steps (default: the model's)")
    p.add_argument("--resolution", type=int, help="render resolution (default: the model's)")
    p.add_argument("--texture-size", type=int, help="texture side in texels (default: the model's)")
    p.add_argument("--batch-size", type=int, help="views per step (default: the model's)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: the model's)")
    p.add_argument("--parametrization", default="pyramid", choices=["pyramid", "texels", "hashgrid"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--up", default="+y", help="the mesh's up axis: +y (default), +z, -x ...")
    p.add_argument("--front", default="+z", help="the mesh's front axis (default +z)")
    p.add_argument("--keep-uvs", action="store_true", help="keep the mesh's UVs instead of a new atlas")
    add_run_options(p, "runs/texture-<mesh stem>")


def add_run_options(p: argparse.ArgumentParser, default_out: str) -> None:
    """The options every job shares: --out, --resume, --device, --threads, --no-progress."""
    p.add_argument("--out", default=None, help=f"run directory (default: {default_out})")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default 1: the MiniPrior's small layers run fastest on one "
                        "thread, and csdkit's kernels use their own); 0 keeps torch's default")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def apply_threads(args) -> None:
    """Set torch's intra-op threads from ``--threads`` (0 keeps torch's default)."""
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)


def _run_texture(args) -> int:
    apply_threads(args)

    out = Path(args.out) if args.out else None
    if args.resume:
        if out is None:
            raise ValueError("--resume needs --out DIR (the run directory to continue)")
        cfg_path = out / "config.json"
        if not cfg_path.exists():
            raise ValueError(f"--resume: {out} has no config.json (not a csdkit run directory)")
        cfg = json.loads(cfg_path.read_text())
        mesh, prompt = args.mesh or cfg["mesh"], args.prompt or cfg["prompt"]
        kwargs = {k: cfg[k] for k in ("steps", "resolution", "texture_size", "batch_size", "lr", "seed",
                                      "parametrization", "up", "front", "keep_uvs", "negative_prompt")}
        model = args.model or cfg.get("model", "mini")
    else:
        if not args.mesh or not args.prompt:
            raise ValueError("texture needs MESH and PROMPT (or --resume --out DIR)")
        mesh, prompt = args.mesh, args.prompt
        out = out or Path("runs") / f"texture-{Path(args.mesh).stem}"
        negative = DEFAULT if args.negative is None else (None if args.negative.lower() == "none" else args.negative)
        kwargs = {"steps": args.steps, "resolution": args.resolution, "texture_size": args.texture_size,
                  "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                  "parametrization": args.parametrization, "up": args.up, "front": args.front,
                  "keep_uvs": args.keep_uvs, "negative_prompt": negative}
        model = args.model or "mini"
    if not str(mesh).startswith("@") and not Path(mesh).exists():
        raise ValueError(f"mesh file not found: {mesh}")
    result = texture(mesh, prompt, prior=model, out_dir=out, device=args.device, resume=args.resume,
                     progress=not args.no_progress, **kwargs)
    if result.status != "completed":
        print(f"csdkit: interrupted at step {result.steps}; a checkpoint is in {out}/checkpoints. "
              f"Continue with: csdkit texture --resume --out {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"csdkit: textured {mesh} in {result.seconds:.1f} s ({result.steps} steps)")
    for name, path in result.files.items():
        print(f"  {name:<10} {path}")
    return EXIT_OK


def _generate_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate a textured mesh from a text prompt (CSD: NeRF, mesh, texture)",
                       description="Generate PROMPT in three resumable stages: a NeRF (nerf), a DMTet mesh "
                                   "refined from it (mesh), and a UV texture (texture). Writes a run directory with "
                                   "textured.glb, textured.obj, mesh/mesh.glb, one turntable per stage, "
                                   "report.html, config, metrics and checkpoints.")
    p.add_argument("prompt", nargs="?", help="text prompt, e.g. \"a yellow torus\"; optional with --resume")
    p.add_argument("--stages", default="nerf,mesh,texture",
                   help="comma-separated stages to run (default nerf,mesh,texture); a later stage alone re-runs "
                        "from the earlier ones saved in --out")
    p.add_argument("--steps-nerf", type=int, help="NeRF-stage steps (default: the model's)")
    p.add_argument("--steps-mesh", type=int, help="mesh-stage steps (default: the model's)")
    p.add_argument("--steps-texture", type=int, help="texture-stage steps (default: the model's)")
    p.add_argument("--model", default=None,
                   help="mini (embedded, default), if (DeepFloyd IF for the NeRF + SD 2.1 for mesh and texture), "
                        "sd21, or a local model folder")
    p.add_argument("--seed", type=int, default=0)
    add_run_options(p, "runs/generate-<prompt>")


def _run_generate(args) -> int:
    apply_threads(args)
    for name in ("steps_nerf", "steps_mesh", "steps_texture"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    out = Path(args.out) if args.out else None
    if args.resume:
        if out is None:
            raise ValueError("--resume needs --out DIR (the run directory to continue)")
        cfg_path = out / "config.json"
        if not cfg_path.exists():
            raise ValueError(f"--resume: {out} has no config.json (not a csdkit run directory)")
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("job") != "generate":
            raise ValueError(f"--resume: {out} is not a generate run (job {cfg.get('job')!r})")
        prompt = args.prompt or cfg["prompt"]
        model = args.model or cfg.get("model", "mini")
    else:
        if not args.prompt or not args.prompt.strip():
            raise ValueError("generate needs a non-empty PROMPT (or --resume --out DIR)")
        prompt, model = args.prompt, args.model or "mini"
        slug = "-".join(w for w in "".join(c if c.isalnum() else " " for c in prompt.lower()).split()[:6])
        out = out or Path("runs") / f"generate-{slug or 'prompt'}"
    result = generate(prompt, out_dir=out, stages=args.stages, steps_nerf=args.steps_nerf,
                      steps_mesh=args.steps_mesh, steps_texture=args.steps_texture, model=model, seed=args.seed,
                      device=args.device, resume=args.resume, progress=not args.no_progress)
    if result.status != "completed":
        print(f"csdkit: interrupted; checkpoints are in {out}. Continue with: csdkit generate --resume --out {out}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    total = sum(s["seconds"] for s in result.stages.values())
    print(f"csdkit: generated {prompt!r} in {total:.1f} s of optimization ("
          + ", ".join(f"{k} {v['steps']} steps" for k, v in result.stages.items()) + ")")
    for name, path in result.files.items():
        print(f"  {name:<18} {path}")
    return EXIT_OK


def _run_info(args) -> int:
    print(json.dumps(build_info(), indent=2))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="csdkit", description="Text-guided 3D content with Classifier "
                                                                "Score Distillation.")
    sub = parser.add_subparsers(dest="command", required=True)
    _texture_parser(sub)
    _generate_parser(sub)
    sub.add_parser("info", help="print what this csdkit build contains")
    args = parser.parse_args(argv)
    handlers = {"texture": _run_texture, "generate": _run_generate, "info": _run_info}
    try:
        return handlers[args.command](args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"csdkit: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("csdkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
