"""The generation job: prompt -> textured mesh, in three resumable stages.

``generate()`` wires public objects, stage by stage, each through the shared Trainer::

    nerf     ImplicitVolume + VolumeRenderer + CSD             (generate_nerf.NerfStage)
    mesh     DMTet from the NeRF + MeshRenderer + CSD           (generate_mesh.MeshStage)
    texture  the texturing job on the stage-2 mesh              (csdkit.pipelines.texture)

Run directory::

    config.json  metrics.json  report.html  textured.glb  textured.obj (+ .mtl, .png)
    nerf/     config.json metrics.jsonl checkpoints/ previews/ volume.pt turntable.png
              start_shape.json start_samples.png (shape_init "auto": the prior's pick, its samples)
    mesh/     ... mesh.glb (untextured, vertex colours) mesh.pt turntable.png
    texture/  the texturing job's run directory (textured.glb/obj, turntable.png, report.html)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..geometry.implicit_volume import ImplicitVolume
from ..geometry.mesh import Mesh
from ..geometry.primitives import BUILTIN_MESHES
from ..guidance.mini import MiniPrior
from ..guidance.priors.base import DiffusionPrior
from ..guidance.priors.deepfloyd_if import DeepFloydIF
from ..training import RunDirectory, image_grid, save_png
from ..training.checkpoint import atomic_write_bytes, list_checkpoints
from .common import check_int_option, check_prompt
from .generate_config import STAGES, GenerateConfig, NerfStageConfig, generate_defaults
from .generate_mesh import MeshStage, load_stage_mesh, run_mesh_stage
from .generate_nerf import VOLUME_FILE, NerfStage, load_volume, run_nerf_stage
from .generate_report import write_generate_report
from .models import load_prior, resolve_device
from .texture import texture

_FN = "generate"
START_FILE = "start_shape.json"  # nerf/: the start shape shape_init="auto" chose
MODELS = ("mini", "if", "sd21")


@dataclasses.dataclass
class GenerateResult:
    """What :func:`generate` returns.

    Attributes:
        mesh: the last stage's mesh: textured (UVs + texture) after ``texture``, with vertex colours
            after ``mesh``; None when only the NeRF stage ran.
        volume: the NeRF (:class:`~csdkit.ImplicitVolume`) when the nerf or mesh stage ran or loaded it.
        status: ``"completed"`` or ``"interrupted"`` (Ctrl-C; continue with ``resume=True``).
        stages: per stage that ran: ``{"status", "steps", "seconds"}``.
        files: output files by name (``glb``, ``obj``, ``mesh_glb``, ``report``, ``<stage>_turntable``...).
        out_dir: the run directory (None when nothing was written).
    """

    mesh: Mesh | None
    volume: ImplicitVolume | None
    status: str
    stages: dict[str, dict]
    files: dict[str, Path]
    out_dir: Path | None


def parse_stages(stages: str | Sequence[str]) -> tuple[str, ...]:
    """``"nerf,mesh"`` or ``["mesh", "texture"]`` -> stage names in pipeline order; ValueError on unknown ones."""
    names = [s.strip() for s in stages.split(",")] if isinstance(stages, str) else list(stages)
    if not names or any(not isinstance(s, str) for s in names) or not all(names):
        raise ValueError(f"{_FN}(): stages must name at least one of {', '.join(STAGES)}, got {stages!r}")
    unknown = [s for s in names if s not in STAGES]
    if unknown:
        raise ValueError(f"{_FN}(): unknown stage {unknown[0]!r}; stages are {', '.join(STAGES)}")
    return tuple(s for s in STAGES if s in names)


def _is_mini_model(model) -> bool:
    if model is None or isinstance(model, MiniPrior):
        return True
    if isinstance(model, str):
        return model == "mini" or (Path(model).expanduser() / "miniprior_config.json").exists()
    return False


def _check_model(model) -> None:
    if model is None or isinstance(model, DiffusionPrior):
        return
    if not isinstance(model, str):
        raise TypeError(f"{_FN}(): model must be 'mini', 'if', 'sd21', a local folder or a DiffusionPrior, "
                        f"got {type(model).__name__}")
    if model not in MODELS and not Path(model).expanduser().exists() and "/" not in model:
        raise ValueError(f"{_FN}(): model must be one of {', '.join(MODELS)} or an existing folder, got {model!r}")


class _Priors:
    """Loads each stage's prior once, when a stage needs it (``--model if``: IF for nerf, SD 2.1 after)."""

    def __init__(self, model, device: torch.device, quiet: bool) -> None:
        self.model, self.device, self.quiet = model, device, quiet
        self._cache: dict[str, DiffusionPrior] = {}

    def _load(self, key: str) -> DiffusionPrior:
        if key not in self._cache:
            if key == "if":
                self._cache[key] = DeepFloydIF(device=self.device)
            else:
                self._cache[key] = load_prior(None if key == "mini" else key, self.device, quiet=self.quiet)
        return self._cache[key]

    def for_stage(self, stage: str) -> DiffusionPrior:
        if isinstance(self.model, DiffusionPrior):
            return self.model
        model = self.model or "mini"
        if model == "if":
            return self._load("if" if stage == "nerf" else "sd21")
        return self._load(model)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _resumed_start(cfg: NerfStageConfig, sub: RunDirectory | None) -> NerfStageConfig:
    """A resumed NeRF stage keeps the start shape its first run chose (``start_shape.json``), not a new pick."""
    path = sub.path / START_FILE if sub is not None else None
    if cfg.shape_init != "auto" or path is None or not path.is_file():
        return cfg
    return dataclasses.replace(cfg, shape_init=json.loads(path.read_text())["shape_init"])


def _save_samples(samples: torch.Tensor, path: Path, min_side: int = 128) -> None:
    """``samples [N, 3, R, R]`` in [0, 1] as one row, each scaled up (nearest) to at least ``min_side`` px."""
    factor = max(1, -(-min_side // samples.shape[-1]))
    big = torch.nn.functional.interpolate(samples, scale_factor=factor, mode="nearest")
    save_png(image_grid(big.permute(0, 2, 3, 1), columns=len(samples)), path)


def _write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True, default=str).encode())


def _stage_done(status: dict, stage: str) -> bool:
    return status.get(stage, {}).get("status") == "completed"


def _check_shape_init(shape_init) -> None:
    if shape_init is None or shape_init in ("blob", "auto"):
        return
    if isinstance(shape_init, str) and shape_init.startswith("@"):
        if shape_init[1:] not in BUILTIN_MESHES:
            raise ValueError(f"{_FN}(): shape_init {shape_init!r} is no built-in mesh; available: "
                             f"{', '.join('@' + k for k in BUILTIN_MESHES)}")
        return
    if not isinstance(shape_init, (str, Path)) or not Path(shape_init).is_file():
        raise ValueError(f"{_FN}(): shape_init must be 'blob', 'auto', a built-in mesh (@torus) or an existing "
                         f"mesh file, got {shape_init!r}")


def generate(prompt: str, *, out_dir: str | Path | None = None, stages: str | Sequence[str] = STAGES,
             steps_nerf: int | None = None, steps_mesh: int | None = None, steps_texture: int | None = None,
             model: str | DiffusionPrior | None = "mini", seed: int = 0, device: str | torch.device | None = "auto",
             resume: bool = False, progress: bool = True, quiet: bool = False, config: GenerateConfig | None = None,
             callback: Callable[[str, int, dict], None] | None = None,
             shape_init: str | None = None) -> GenerateResult:
    """Generate a textured mesh of ``prompt``: NeRF -> DMTet mesh -> UV texture, all with CSD.

    Args:
        prompt: what to generate; with the MiniPrior one of its shapes and colours ("a yellow torus").
        out_dir: the run directory (see the module doc); None writes nothing (then ``stages`` must
            start with ``nerf`` and run in one call).
        stages: which stages to run, ``"nerf,mesh,texture"`` (default, all) or a subset; a later stage
            alone reads the earlier ones' outputs from ``out_dir`` and is re-run from scratch.
        steps_nerf, steps_mesh, steps_texture: step counts (>= 1); None: the model's defaults
            (:mod:`csdkit.pipelines.generate_config`).
        model: ``"mini"`` (embedded, CPU, default), ``"if"`` (DeepFloyd IF for the NeRF, SD 2.1 base for
            mesh and texture, official schedules), ``"sd21"`` (SD 2.1 base for every stage), a local model
            folder, or a :class:`~csdkit.guidance.DiffusionPrior` used for every stage.
        seed: seeds every stage (a CPU run is deterministic for a fixed seed).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        resume: continue the interrupted run in ``out_dir`` (finished stages are kept, the interrupted one
            resumes from its newest checkpoint, the rest run); uses the saved config and prompt.
        progress: progress bars; quiet: no informational prints.
        config: full stage settings (a :class:`GenerateConfig`), instead of the model's defaults.
        callback: ``callback(stage, step, info)`` after every nerf / mesh step.
        shape_init: the NeRF's start shape (``NerfStageConfig.shape_init``): ``"blob"`` (a ball), ``"auto"``
            (the prior picks a template, :func:`~csdkit.pipelines.start_shape.choose_start_shape`), a
            built-in mesh (``"@torus"``) or a mesh file; None keeps the config's (``"auto"`` for the
            MiniPrior, ``"blob"`` for IF / SD).

    Returns:
        :class:`GenerateResult`.

    Raises:
        ValueError: empty prompt, unknown stage, non-positive step count, a later stage without the
            finished earlier one in ``out_dir``, or ``resume`` without a run to continue.
    """
    check_prompt(_FN, prompt)
    wanted = parse_stages(stages)
    for name, value in (("steps_nerf", steps_nerf), ("steps_mesh", steps_mesh), ("steps_texture", steps_texture)):
        check_int_option(_FN, name, value, 1)
    check_int_option(_FN, "seed", seed, 0)
    _check_model(model)
    _check_shape_init(shape_init)
    if config is not None and not isinstance(config, GenerateConfig):
        raise TypeError(f"{_FN}(): config must be a GenerateConfig or None, got {type(config).__name__}")
    first = STAGES.index(wanted[0])
    if wanted != STAGES[first:first + len(wanted)]:
        raise ValueError(f"{_FN}(): stages must be consecutive (each reads the one before), got {','.join(wanted)}")
    root = Path(out_dir) if out_dir is not None else None
    if root is None and (resume or wanted[0] != "nerf"):
        raise ValueError(f"{_FN}(): out_dir is needed to resume or to run stages {','.join(wanted)} "
                         "(later stages read the earlier ones from it)")
    dev = resolve_device(device)

    status = _read_json(root / "status.json") if root is not None else {}
    if resume:
        saved = _read_json(root / "config.json")
        if saved.get("job") != "generate":
            raise ValueError(f"{_FN}(): resume=True but {root} holds no generate run (no config.json)")
    elif root is not None:
        _check_fresh(root, wanted, status)  # before anything is written
    run = RunDirectory(root) if root is not None else None
    if resume:
        if prompt != saved["prompt"]:
            raise ValueError(f"{_FN}(): resume=True continues the prompt {saved['prompt']!r}, got {prompt!r}")
        cfg = GenerateConfig.from_dict(saved["config"])
        seed, wanted = int(saved["seed"]), tuple(saved["stages"])
        model = model if isinstance(model, DiffusionPrior) else saved.get("model", "mini")
    else:
        earlier = _read_json(root / "config.json") if root is not None and wanted[0] != "nerf" else {}
        if config is None and "config" in earlier:  # a later stage re-run keeps the settings of the earlier ones
            cfg = GenerateConfig.from_dict(earlier["config"])
        else:
            cfg = config or generate_defaults(_is_mini_model(model))
        cfg = cfg.with_steps(steps_nerf, steps_mesh, steps_texture)
        if shape_init is not None:
            cfg = dataclasses.replace(cfg, nerf=dataclasses.replace(cfg.nerf, shape_init=str(shape_init)))
        if run is not None:
            for name in wanted:  # stages that are re-run start from scratch
                if (run.path / name).exists():
                    shutil.rmtree(run.path / name)
            status = {k: v for k, v in status.items() if k not in wanted}
            run.write_config({"job": "generate", "prompt": prompt, "model": model if isinstance(model, str) else
                              type(model).__name__, "seed": seed, "stages": list(wanted), "device": str(dev),
                              "config": cfg.to_dict()})
            _write_json(run.path / "status.json", status)

    priors = _Priors(model, dev, quiet)
    first_prior = priors.for_stage(wanted[0])
    if isinstance(first_prior, MiniPrior):
        first_prior.embed([prompt])  # warns once about the words the MiniPrior does not know
    files: dict[str, Path] = {}
    result_stages: dict[str, dict] = {}
    volume: ImplicitVolume | None = None
    mesh: Mesh | None = None
    overall = "completed"

    def stage_dir(name: str) -> RunDirectory | None:
        return RunDirectory(run.path / name) if run is not None else None

    def record(name: str, res) -> None:
        info = {"status": res.status, "steps": res.step, "seconds": round(res.seconds, 2),
                "seconds_per_step": round(res.seconds / max(res.step, 1), 4)}
        result_stages[name] = info
        if run is not None:
            status[name] = info
            _write_json(run.path / "status.json", status)

    def stage_callback(name: str):
        return None if callback is None else (lambda step, info: callback(name, step, info))

    for name in wanted:
        sub = stage_dir(name)
        if resume and _stage_done(status, name):
            result_stages[name] = status[name]
            if name == "nerf":
                volume = load_volume(run.path / "nerf" / VOLUME_FILE, dev)
            elif name == "mesh":
                mesh = load_stage_mesh(run.path / "mesh")
            continue
        stage_resume = bool(resume and sub is not None and list_checkpoints(sub.checkpoints))
        if name == "nerf":
            nerf_cfg = _resumed_start(cfg.nerf, sub if stage_resume else None)
            st = NerfStage(prompt, priors.for_stage("nerf"), nerf_cfg, dev, seed=seed)
            if st.start is not None:
                if not quiet:
                    print(f"generate: start shape {st.start.name} (chosen by the prior from its own samples, "
                          f"{st.start.seconds:.1f} s)")
                if sub is not None:
                    _write_json(sub.path / START_FILE, st.start.to_dict())
                    _save_samples(st.start.samples, sub.path / "start_samples.png")
            res = run_nerf_stage(st, sub, resume=stage_resume, progress=progress,
                                 checkpoint_every=max(1, cfg.nerf.steps // 10),
                                 preview_every=max(1, cfg.nerf.steps // 10), desc=f"nerf '{prompt[:30]}'",
                                 callback=stage_callback("nerf"))
            volume = st.volume
        elif name == "mesh":
            if volume is None:
                volume = load_volume(run.path / "nerf" / VOLUME_FILE, dev)
            st = MeshStage(prompt, priors.for_stage("mesh"), cfg.mesh, volume, dev, seed=seed + 1)
            res = run_mesh_stage(st, sub, resume=stage_resume, progress=progress,
                                 checkpoint_every=max(1, cfg.mesh.steps // 10),
                                 preview_every=max(1, cfg.mesh.steps // 10), desc=f"mesh '{prompt[:30]}'",
                                 callback=stage_callback("mesh"))
            mesh = st.export()
        else:
            if mesh is None:
                mesh = load_stage_mesh(run.path / "mesh")
            mesh = _decimate_for_atlas(mesh, cfg.mesh.max_faces, quiet)
            start = _texture_start(mesh)
            tex = texture(mesh, prompt, prior=priors.for_stage("texture"), steps=cfg.texture_steps, seed=seed + 2,
                          init_color=start,
                          out_dir=sub.path if sub is not None else None, device=dev, resume=stage_resume,
                          progress=progress, quiet=True)
            res = _TextureRun(tex.status, tex.steps, tex.seconds)
            mesh = tex.mesh
            if run is not None and tex.status == "completed":
                for f in sorted(sub.path.glob("textured.*")):
                    shutil.copyfile(f, run.path / f.name)
        record(name, res)
        if res.status != "completed":
            overall = "interrupted"
            break

    if run is not None:
        files.update(_collect_files(run.path))
        if overall == "completed":
            _write_json(run.path / "metrics.json", {"prompt": prompt, "stages": status})
            files["report"] = write_generate_report(run, prompt, status)
    return GenerateResult(mesh, volume, overall, result_stages, files, run.path if run is not None else None)


@dataclasses.dataclass
class _TextureRun:
    status: str
    step: int
    seconds: float


def _check_fresh(root: Path, wanted: tuple[str, ...], status: dict) -> None:
    """A fresh run: refuse to overwrite a run that starts at nerf; a later stage needs the earlier one."""
    if wanted[0] == "nerf":
        if list_checkpoints(root / "nerf" / "checkpoints"):
            raise ValueError(f"{_FN}(): {root} already holds a run; pass resume=True (--resume) to continue "
                             "it or choose another out_dir")
        return
    needed = STAGES[STAGES.index(wanted[0]) - 1]
    marker = Path("nerf", VOLUME_FILE) if needed == "nerf" else Path("mesh", "mesh.pt")
    if not _stage_done(status, needed) or not (root / marker).exists():
        raise ValueError(f"{_FN}(): stage {wanted[0]!r} needs a finished {needed!r} stage in {root} "
                         f"({marker} is missing); run --stages {needed} first")
    if _read_json(root / "config.json").get("job") != "generate":
        raise ValueError(f"{_FN}(): {root} holds no generate run (no config.json)")


def _texture_start(mesh: Mesh) -> str | float:
    """Where the texture stage starts: ``"mesh"`` (the stage-2 mesh's per-vertex colours, the NeRF's albedo,
    baked into the new atlas); mid-grey for a mesh without vertex colours."""
    return "mesh" if mesh.has_vertex_colors else 0.5


def _decimate_for_atlas(mesh: Mesh, max_faces: int, quiet: bool) -> Mesh:
    """Decimate meshes denser than ``max_faces`` (open3d's quadric decimation) before the UV atlas."""
    if mesh.num_faces <= max_faces:
        return mesh
    try:
        return mesh.decimated(max_faces)
    except ImportError:
        warnings.warn(f"generate(): the mesh has {mesh.num_faces} faces (more than {max_faces}) and open3d is not "
                      "installed to decimate it (pip install open3d); the UV atlas may take long", stacklevel=3)
        return mesh


def _collect_files(root: Path) -> dict[str, Path]:
    found = {"glb": root / "textured.glb", "obj": root / "textured.obj", "mesh_glb": root / "mesh" / "mesh.glb",
             "volume": root / "nerf" / VOLUME_FILE, "config": root / "config.json",
             "metrics": root / "metrics.json"}
    for stage in STAGES:
        found[f"{stage}_turntable"] = root / stage / "turntable.png"
    return {k: p for k, p in found.items() if p.exists()}


__all__ = ["GenerateResult", "generate", "parse_stages"]
