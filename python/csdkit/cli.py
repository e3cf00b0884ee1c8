"""The ``csdkit`` command.

    csdkit texture MESH "prompt" [options]     UV-texture a mesh with CSD
    csdkit generate "prompt" [options]         prompt -> NeRF -> DMTet mesh -> UV-textured mesh
    csdkit edit INPUT "target prompt" [options]  edit a textured mesh or a texture / edit / generate run toward a prompt
    csdkit view MESH_OR_RUN_DIR [--out FILE]    an offline HTML page with an interactive 3D view
    csdkit batch MANIFEST --out DIR [options]   run a manifest of jobs (resumable; local or Ray)
    csdkit info                                 what this build contains

Exit codes: 0 done, 1 internal error (batch: at least one item failed), 2 bad input (a one-line
message, no traceback), 130 interrupted by Ctrl-C (a checkpoint was written; continue with --resume;
a batch resumes when the same command runs again).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ._build import build_info
from .editing import DEFAULT_FIDELITY, parse_region
from .pipelines.batch import batch
from .pipelines.edit import STAGES, edit
from .pipelines.generate import generate
from .pipelines.texture import DEFAULT, texture
from .pipelines.view import view
from .viewer import MAX_GLB_BYTES

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
    p.add_argument("--init-color", default="0.5",
                   help="where the texture starts: R,G,B or a grey level in [0, 1] (default 0.5), or 'mesh' "
                        "(the mesh's vertex colours, baked into the atlas)")
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
        cfg = _resumed_config(out, "texture")
        mesh, prompt = args.mesh or cfg["mesh"], args.prompt or cfg["prompt"]
        kwargs = {k: cfg[k] for k in ("steps", "resolution", "texture_size", "batch_size", "lr", "seed",
                                      "parametrization", "up", "front", "keep_uvs", "negative_prompt")}
        # "mesh", or an RGB list; runs from before init_color started mid-grey
        kwargs["init_color"] = cfg.get("init_color", 0.5)
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
                  "keep_uvs": args.keep_uvs, "negative_prompt": negative,
                  "init_color": _texture_start_color(args.init_color)}
        model = args.model or "mini"
    if not str(mesh).startswith("@") and not Path(mesh).exists():
        raise ValueError(f"mesh file not found: {mesh}")
    result = texture(mesh, prompt, prior=model, out_dir=out, device=args.device, resume=args.resume,
                     progress=not args.no_progress, **kwargs)
    if result.status != "completed":
        return _interrupted("texture", out, result.steps)
    print(f"csdkit: textured {mesh} in {result.seconds:.1f} s ({result.steps} steps)")
    return _print_files(result.files)


def _resumed_config(out: Path | None, job: str) -> dict:
    """The config.json of the ``job`` run in ``out`` that ``--resume`` continues (ValueError naming the problem)."""
    if out is None:
        raise ValueError("--resume needs --out DIR (the run directory to continue)")
    cfg_path = out / "config.json"
    if not cfg_path.exists():
        raise ValueError(f"--resume: {out} has no config.json (not a csdkit run directory)")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("job", job) != job:  # runs from before jobs were recorded are texture runs
        raise ValueError(f"--resume: {out} is a {cfg.get('job')!r} run, not a {job} run")
    return cfg


def _interrupted(job: str, out, step: int | None = None) -> int:
    """Say where the checkpoint is and how to continue; the exit code of an interrupted run."""
    at = f" at step {step}" if step is not None else ""
    print(f"csdkit: interrupted{at}; checkpoints are in {out}. Continue with: csdkit {job} --resume --out {out}",
          file=sys.stderr)
    return EXIT_INTERRUPTED


def _print_files(files: dict) -> int:
    """List a finished job's files (name, path); the exit code of a completed run."""
    width = max((len(n) for n in files), default=0) + 2
    for name, path in files.items():
        print(f"  {name:<{width}} {path}")
    return EXIT_OK


def _edit_parser(sub) -> None:
    p = sub.add_parser("edit", help="edit a textured mesh toward a text prompt (CSD, away from --source)",
                       description="Edit INPUT (a textured GLB/GLTF, OBJ+MTL+PNG, or the run directory of "
                                   "csdkit texture / csdkit edit / csdkit generate) so that it matches the target "
                                   "prompt. Writes a run directory with edited.glb, edited.obj (input's UVs and "
                                   "placement), original and edited turntables, report.html, metrics and checkpoints.")
    p.add_argument("input", nargs="?", help="textured mesh file or csdkit run directory; optional with --resume")
    p.add_argument("prompt", nargs="?", help="target description, e.g. \"a green vase\"")
    p.add_argument("--source", default=None, help="what the input looks like now (pushed away from); "
                                                   "default: none (plain CSD toward the target)")
    p.add_argument("--fidelity", type=float, default=None,
                   help=f"weight of the keep-the-original term (default {DEFAULT_FIDELITY}, see docs/editing.md); "
                        "higher keeps more of the input, 0 is pure CSD")
    p.add_argument("--region", default=None, help="box:XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX in the input's own "
                                                   "coordinates, a face-index file (.txt/.csv/.json/.npy) or a "
                                                   "UV mask image the size of the texture")
    p.add_argument("--steps", type=int, help="optimization steps (default: 150 with mini, 1000 with Stable Diffusion)")
    p.add_argument("--init-color", default=None, help="R,G,B in [0, 1]: start an untextured mesh from this colour")
    p.add_argument("--stage", default="auto", metavar="{auto,nerf,mesh}",
                   help="for a csdkit generate run directory as INPUT: mesh edits its DMTet (mesh/dmtet.pt, a "
                        "shape edit), nerf its NeRF (nerf/volume.pt, shape and appearance), auto (default) the "
                        "DMTet if the mesh stage has finished, else the NeRF; other inputs take only auto")
    p.add_argument("--model", default=None, help="mini (embedded, default), sd21, or a local model folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--up", default="+y", help="the input's up axis (default +y)")
    p.add_argument("--front", default="+z", help="the input's front axis (default +z)")
    add_run_options(p, "runs/edit-<input stem>")


def _texture_start_color(text: str) -> str | float | tuple[float, ...]:
    """``texture --init-color``: ``"mesh"``, one grey level, or R,G,B."""
    if text.strip().lower() == "mesh":
        return "mesh"
    values = _parse_color(text)
    return values[0] if len(values) == 1 else values


def _parse_color(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--init-color must be R,G,B (or one grey level) in [0, 1], got {text!r}") from None
    if len(values) not in (1, 3) or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"--init-color must be R,G,B (or one grey level) in [0, 1], got {text!r}")
    return values


def _run_edit(args) -> int:
    apply_threads(args)
    if args.steps is not None and args.steps < 0:
        raise ValueError(f"--steps must be >= 0, got {args.steps}")
    if args.fidelity is not None and not args.fidelity >= 0:
        raise ValueError(f"--fidelity must be >= 0, got {args.fidelity}")
    out = Path(args.out) if args.out else None
    if args.resume:
        cfg = _resumed_config(out, "edit")
        if args.stage != "auto" and args.stage != cfg.get("stage"):
            raise ValueError(f"--resume continues the stage the run recorded ({cfg.get('stage')!r}); got "
                             f"--stage {args.stage}")
        source = args.input or cfg.get("asset") or cfg["input"]  # "asset": the path given (a generate run dir)
        kwargs = {"target_prompt": args.prompt or cfg["target_prompt"], "source_prompt": cfg["source_prompt"],
                  "stage": cfg.get("stage") or "auto",  # the stage edited, so a resume edits the same one
                  "fidelity": cfg["fidelity"], "region": cfg["region"], "steps": cfg["steps"], "seed": cfg["seed"],
                  "up": cfg["up"], "front": cfg["front"], "init_color": cfg.get("init_color"),
                  "texture_size": cfg.get("texture_size", 512)}
        model = args.model or cfg.get("model") or "mini"
    else:
        if not args.input or not args.prompt:
            raise ValueError("edit needs INPUT and a target PROMPT (or --resume --out DIR)")
        source = args.input
        if args.stage not in STAGES:
            raise ValueError(f"--stage must be one of {', '.join(STAGES)}, got {args.stage!r}")
        parse_region(args.region)  # a malformed box or a missing file fails before any loading
        out = out or Path("runs") / f"edit-{Path(args.input).stem}"
        kwargs = {"target_prompt": args.prompt, "source_prompt": args.source,
                  "fidelity": DEFAULT_FIDELITY if args.fidelity is None else args.fidelity, "region": args.region,
                  "steps": args.steps, "seed": args.seed, "up": args.up, "front": args.front, "stage": args.stage,
                  "init_color": None if args.init_color is None else _parse_color(args.init_color)}
        model = args.model or "mini"
    if not Path(source).exists():
        raise ValueError(f"input not found: {source}")
    prompt = kwargs.pop("target_prompt")
    result = edit(source, prompt, prior=model, out_dir=out, device=args.device, resume=args.resume,
                  progress=not args.no_progress, **kwargs)
    if result.status != "completed":
        return _interrupted("edit", out, result.steps)
    print(f"csdkit: edited {source} in {result.seconds:.1f} s ({result.steps} steps)")
    return _print_files(result.files)


def _view_parser(sub) -> None:
    p = sub.add_parser("view", help="write an offline HTML page with an interactive 3D view of a mesh or run",
                       description="Write a self-contained HTML page (no network, opens from disk) that shows "
                                   "SOURCE in an interactive WebGL2 view: drag to orbit, wheel to zoom, double-click "
                                   "to reset, toggles for wireframe / UV checker / albedo. SOURCE is a GLB (embedded "
                                   "as is), GLTF/OBJ/PLY/STL/OFF (converted through csdkit's loader) or a run "
                                   f"directory (its result GLBs). Limit: {MAX_GLB_BYTES // 2**20} MiB per page.")
    p.add_argument("source", help="mesh file or csdkit run directory")
    p.add_argument("--out", default=None, help="page to write (default: <mesh>.view.html, or <run dir>/view.html)")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--unlinked", action="store_true", help="one camera per view instead of one for all")
    p.add_argument("--size", type=int, nargs=2, default=(480, 480), metavar=("W", "H"), help="view size in pixels")


def _run_view(args) -> int:
    out = view(args.source, args.out, title=args.title, linked=not args.unlinked, size=tuple(args.size))
    print(out)
    return EXIT_OK


def _batch_parser(sub) -> None:
    p = sub.add_parser("batch", help="run a manifest of jobs (texture ...) into one folder, resumably",
                       description="Run every item of MANIFEST (JSONL: one JSON object a line, or CSV with a "
                                   "header; fields mesh, prompt, optional id and job, and the job's options) "
                                   "into DIR/items/<id>. Running the same command again skips done items, "
                                   "resumes interrupted ones and retries failed ones with --retry-failed. "
                                   "Writes DIR/batch.sqlite (status), DIR/summary.json and DIR/index.html. "
                                   "Exit 0 all done, 1 some failed, 2 bad manifest, 130 interrupted.")
    p.add_argument("manifest", help="manifest file (.jsonl or .csv)")
    p.add_argument("--out", default=None, help="batch folder (default: runs/batch-<manifest stem>)")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local worker processes (default) or Ray tasks (pip install 'csdkit[ray]')")
    p.add_argument("--workers", type=int, default=None,
                   help="items at once (default: one per GPU, else min(cores, 4) CPU items)")
    p.add_argument("--timeout", type=float, default=None, help="seconds an item attempt may run (default: none)")
    p.add_argument("--retry-failed", action="store_true", help="run failed items again (up to --max-attempts)")
    p.add_argument("--max-attempts", type=int, default=3, help="attempts per item with --retry-failed (default 3)")
    p.add_argument("--ray-address", default=None, help="Ray cluster to join (default: start a local Ray)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per item (default: the cores split between the items running at once)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_batch(args) -> int:
    out = Path(args.out) if args.out else Path("runs") / f"batch-{Path(args.manifest).stem}"
    result = batch(args.manifest, out, engine=args.engine, workers=args.workers, timeout=args.timeout,
                   retry_failed=args.retry_failed, max_attempts=args.max_attempts, ray_address=args.ray_address,
                   threads=args.threads, progress=not args.no_progress)
    return result.exit_code


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
    p.add_argument("--shape-init", default=None,
                   help="the NeRF's start shape: auto (the prior picks sphere, cube, torus, cylinder or cone "
                        "from its own samples of the prompt; the MiniPrior's default), blob (a ball; the IF / SD "
                        "default), a built-in mesh (@torus, @cube, @vase, ...) or a mesh file (GLB/OBJ/PLY)")
    add_run_options(p, "runs/generate-<prompt>")


def _run_generate(args) -> int:
    apply_threads(args)
    for name in ("steps_nerf", "steps_mesh", "steps_texture"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    out = Path(args.out) if args.out else None
    if args.resume:
        cfg = _resumed_config(out, "generate")
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
                      device=args.device, resume=args.resume, progress=not args.no_progress,
                      shape_init=args.shape_init)
    if result.status != "completed":
        return _interrupted("generate", out)
    total = sum(s["seconds"] for s in result.stages.values())
    print(f"csdkit: generated {prompt!r} in {total:.1f} s of optimization ("
          + ", ".join(f"{k} {v['steps']} steps" for k, v in result.stages.items()) + ")")
    return _print_files(result.files)


def _run_info(args) -> int:
    print(json.dumps(build_info(), indent=2))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="csdkit", description="Text-guided 3D content with Classifier "
                                                                "Score Distillation.")
    sub = parser.add_subparsers(dest="command", required=True)
    _texture_parser(sub)
    _generate_parser(sub)
    _edit_parser(sub)
    _view_parser(sub)
    _batch_parser(sub)
    sub.add_parser("info", help="print what this csdkit build contains")
    args = parser.parse_args(argv)
    handlers = {"texture": _run_texture, "generate": _run_generate,
                "edit": _run_edit, "view": _run_view, "batch": _run_batch,
                "info": _run_info}
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
