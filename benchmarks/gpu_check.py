"""Driver of ``make gpu-check``: build, CUDA tests and quick GPU benchmarks, one report.

``benchmarks/gpu_check.sh`` finds the GPU and a Python whose torch sees it, then runs::

    python benchmarks/gpu_check.py run --out DIR --python PY [--torch-choice TEXT]

which runs these phases in order, each under its own ``timeout`` (and all of them under one time
budget, ``GPU_CHECK_BUDGET`` seconds, default 450, counted without the time spent installing):

=================  ===========================================================================
``env``            GPU (nvidia-smi), torch and CUDA versions, the third-party baselines found
``deps``           missing Python packages: pip-installed into that Python's environment
``build``          CMake tree ``build/gpu-check-<arch>`` with ``CSDKIT_CUDA=ON`` and
                   ``CSDKIT_CUDA_ARCHITECTURES`` = the present GPU's compute capability only
``verify``         ``csdkit.build_info()`` from that build; ``csdkit.has_cuda()`` must be true
``ctest``          the C++ tests of that build
``tests``          ``pytest -m cuda``: CPU/CUDA parity of every kernel (per-test JSON lines)
``bench-<suite>``  ``benchmarks/run.py <suite> --device cuda --quick`` for each suite
=================  ===========================================================================

After every phase it rewrites ``DIR/gpu-check.json`` (everything measured) and
``DIR/gpu-check.md`` (the tables), so a phase that fails or times out keeps what the earlier ones
measured. ``DIR/gpu-check.log`` holds every command's output, ``DIR/gpu-check-tests.jsonl`` one
line per test report. The module imports only the standard library: the report can be rendered
anywhere (``python benchmarks/gpu_check.py report DIR``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from gpu_check_report import (  # noqa: E402
    load_state,
    render_markdown,
    save_state,
    summarize_tests,
    verdict,
)

REPO = pathlib.Path(__file__).resolve().parent.parent
# Suites in this order, then any other suite in benchmarks/suites/ (e.g. marching_tets), alphabetically.
PREFERRED_SUITES = ("hashgrid", "volrend", "volrend_nerf", "raster", "guidance", "texture")


def default_suites() -> list[str]:
    present = sorted(p.stem for p in (REPO / "benchmarks" / "suites").glob("*.py") if not p.stem.startswith("_"))
    return [s for s in PREFERRED_SUITES if s in present] + [s for s in present if s not in PREFERRED_SUITES]


# The texturing suite's reference step rasterizes 512x512 on the CPU (minutes per step): the
# check times the compiled step only, which is what "seconds per step" means.
SUITE_ONLY = {"texture": ["step/csdkit"]}
TIMEOUTS = {"env": 90, "deps": 300, "build": 300, "verify": 60, "ctest": 60, "tests": 240,
            "bench-hashgrid": 60, "bench-volrend": 90, "bench-volrend_nerf": 120, "bench-raster": 60,
            "bench-guidance": 150, "bench-texture": 120}
DEFAULT_BUDGET_S = 450
MIN_PHASE_S = 10  # a phase with less time than this left in the budget is skipped
THIRD_PARTY = ("tinycudann", "nerfacc", "nvdiffrast", "kaolin")
# (module, pip requirement); diffusers is imported for real: an incompatible hub breaks it late
REQUIRED = [("numpy", "numpy>=1.24"), ("diffusers", "diffusers>=0.27"), ("transformers", "transformers>=4.38"),
            ("safetensors", "safetensors>=0.4"), ("trimesh", "trimesh>=4.0"), ("xatlas", "xatlas>=0.0.9"),
            ("PIL", "pillow>=9.0"), ("tqdm", "tqdm>=4.60"), ("pytest", "pytest>=7"), ("pybind11", "pybind11>=3")]

_PROBE = r"""
import importlib, importlib.util, json, os, platform, sys, sysconfig
inc = sysconfig.get_paths().get("include", "")
out = {"python": sys.executable, "python_version": platform.python_version(), "python_include": inc,
       "python_h": os.path.exists(os.path.join(inc, "Python.h"))}
try:
    import torch
    out.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(device_name=p.name, capability=f"{p.major}.{p.minor}", device_count=torch.cuda.device_count(),
                   memory_gib=round(p.total_memory / 2**30, 1), multiprocessors=p.multi_processor_count)
except Exception as exc:
    out["torch_error"] = f"{type(exc).__name__}: {exc}"
missing, broken = [], {}
for mod, spec in REQUIRED:
    try:
        m = importlib.import_module(mod)
        if mod == "diffusers":
            from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: F401
        if mod == "pybind11" and int(m.__version__.split(".")[0]) < 3:
            missing.append(spec)
    except ImportError as exc:
        (missing.append(spec) if importlib.util.find_spec(mod) is None else
         broken.__setitem__(mod, f"{type(exc).__name__}: {exc}"[:300]))
    except Exception as exc:
        broken[mod] = f"{type(exc).__name__}: {exc}"[:300]
out["missing"], out["broken"] = missing, broken
out["baselines"] = {m: importlib.util.find_spec(m) is not None for m in THIRD_PARTY}
print("GPU_CHECK_PROBE " + json.dumps(out))
"""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _say(msg: str) -> None:
    print(f"gpu-check: {msg}", flush=True)


class Check:
    """One gpu-check run: phases, their log, the state file and the time budget."""

    def __init__(self, out: pathlib.Path, python: str, budget_s: float, timeouts: dict[str, float]) -> None:
        self.out = out
        self.python = python
        self.timeouts = timeouts
        self.work = REPO / "build" / "gpu-check"
        self.work.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        self.log_path = out / "gpu-check.log"
        self.tests_log = out / "gpu-check-tests.jsonl"
        self.tests_log.unlink(missing_ok=True)
        self.state = {"schema": 1, "started": _now(), "finished": False, "budget_s": budget_s, "phases": [],
                      "env": {}, "tests": None, "benchmarks": []}
        self.t0 = time.monotonic()
        self.deadline = self.t0 + budget_s
        self.env = self._child_env()
        self.save()

    # ---- plumbing ------------------------------------------------------------------------------
    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        extra = [str(REPO / "python"), str(REPO / "benchmarks")]
        env["PYTHONPATH"] = os.pathsep.join(extra + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        # cmake, ninja and pip scripts of that Python's environment (a venv's bin/) come first
        env["PATH"] = os.pathsep.join([str(pathlib.Path(self.python).parent), env.get("PATH", "")])
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("HF_HUB_OFFLINE", "1")  # random-weight presets only: nothing is downloaded
        env.pop("CSDKIT_FORCE_REFERENCE", None)
        return env

    def save(self) -> None:
        self.state["updated"] = _now()
        self.state["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        save_state(self.out, self.state)

    def phase_limit(self, name: str) -> float:
        return min(self.timeouts.get(name, 120), self.deadline - time.monotonic())

    def record(self, name: str, status: str, seconds: float = 0.0, note: str = "", **extra) -> dict:
        entry = {"name": name, "status": status, "seconds": round(seconds, 1), "note": note, **extra}
        self.state["phases"] = [p for p in self.state["phases"] if p["name"] != name] + [entry]
        self.save()
        _say(f"[{name}] {status}" + (f" in {seconds:.1f} s" if seconds else "") + (f": {note}" if note else ""))
        return entry

    def skip(self, name: str, why: str) -> dict:
        return self.record(name, "skipped", note=why)

    def ok(self, name: str) -> bool:
        return any(p["name"] == name and p["status"] == "ok" for p in self.state["phases"])

    def run(self, name: str, commands: list[list[str]], limit: float | None = None, note: str = "") -> dict:
        """Runs ``commands`` one after another under one ``timeout`` budget; output to the log."""
        limit = self.phase_limit(name) if limit is None else limit
        if limit < MIN_PHASE_S:
            return self.skip(name, "out of the time budget (GPU_CHECK_BUDGET)")
        start = time.monotonic()
        status, rc = "ok", 0
        with open(self.log_path, "a", encoding="utf-8") as log:
            offset = log.tell()
            log.write(f"\n===== [{name}] {_now()} (limit {limit:.0f} s)\n")
            for cmd in commands:
                left = limit - (time.monotonic() - start)
                if left < 1:
                    status = "timeout"
                    break
                log.write(f"$ {shlex.join(cmd)}\n")
                log.flush()
                rc = subprocess.run(["timeout", "-k", "10", f"{left:.0f}", *cmd], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                                    env=self.env).returncode
                if rc in (124, 137):
                    status = "timeout"
                    break
                if rc != 0:
                    status = "failed"
                    break
        seconds = time.monotonic() - start
        if status != "ok":
            note = note or (f"stopped at its {limit:.0f} s limit" if status == "timeout" else f"exit status {rc}")
            self._print_tail(offset)
        return self.record(name, status, seconds, note, limit_s=round(limit), rc=rc,
                           commands=[shlex.join(c) for c in commands])

    def _print_tail(self, offset: int, lines: int = 25) -> None:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            f.seek(offset)
            tail = f.read().splitlines()[-lines:]
        print("\n".join("    | " + line for line in tail), flush=True)

    def probe(self) -> dict | None:
        """Runs the environment probe with the chosen Python; None if it did not answer."""
        code = f"REQUIRED = {REQUIRED!r}\nTHIRD_PARTY = {THIRD_PARTY!r}\n{_PROBE}"
        try:
            proc = subprocess.run(["timeout", "-k", "5", f"{max(self.phase_limit('env'), 5):.0f}", self.python,
                                   "-c", code], capture_output=True, text=True, cwd=REPO, env=self.env)
        except OSError:
            return None
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"\n===== [probe] {_now()}\n{proc.stdout}{proc.stderr}")
        for line in proc.stdout.splitlines():
            if line.startswith("GPU_CHECK_PROBE "):
                return json.loads(line.split(" ", 1)[1])
        return None

    # ---- phases --------------------------------------------------------------------------------
    def phase_env(self, torch_choice: str, device: str = "cuda") -> bool:
        start = time.monotonic()
        env = self.state["env"]
        env.update(nvidia_smi_gpus(), torch_choice=torch_choice, host=os.uname().nodename)
        env["nvcc"] = tool_version(find_nvcc(), r"release ([\d.]+), V([\d.]+)", group=2)
        env["cmake"] = tool_version(shutil.which("cmake", path=self.env["PATH"]), r"cmake version (\d+(?:\.\d+)*)")
        env["ninja"] = tool_version(shutil.which("ninja", path=self.env["PATH"]), r"(\d+(?:\.\d+)*)")
        probe = self.probe()
        if probe is None:
            self.record("env", "failed", time.monotonic() - start, f"{self.python} did not answer the probe")
            return False
        env.update(probe)
        if not probe.get("cuda_available") and device == "cuda":
            why = probe.get("torch_error") or f"torch {probe.get('torch')} (CUDA {probe.get('torch_cuda')}) sees no GPU"
            self.record("env", "failed", time.monotonic() - start, why)
            return False
        torch_line = f"torch {probe.get('torch')} (CUDA {probe.get('torch_cuda')})"
        self.record("env", "ok", time.monotonic() - start, f"{probe.get('device_name', 'no GPU')}, {torch_line}")
        return True

    def phase_deps(self) -> None:
        env = self.state["env"]
        # ninja is optional (CMake falls back to Makefiles); cmake is not
        tools = [] if env.get("cmake") and _version_tuple(env["cmake"]) >= (3, 24) else ["cmake>=3.24"]
        missing = list(env.get("missing", [])) + tools
        if env.get("broken"):
            broken = "; ".join(f"{m}: {e}" for m, e in env["broken"].items())
            self.record("deps", "failed", note=f"importable but broken: {broken}")
            return
        if not missing:
            self.record("deps", "ok", note="every package was already there")
            return
        if os.environ.get("GPU_CHECK_NO_INSTALL", "") not in ("", "0"):
            self.record("deps", "failed", note=f"missing {missing} (GPU_CHECK_NO_INSTALL is set): pip install "
                        "them, or put their wheels in .whl/ (make gpu-wheels)")
            return
        # pip gives up quickly where there is no network; the budget does not count the install
        before = time.monotonic()
        res = self.run("deps", [[self.python, "-m", "pip", "install", "-q", "--retries", "1", "--timeout", "15",
                                 *missing]], limit=self.timeouts.get("deps", 300),
                       note=f"pip could not install {missing}: install them or carry their wheels in .whl/")
        self.deadline += time.monotonic() - before
        if res["status"] == "ok":
            probe = self.probe() or {}
            env["missing"] = probe.get("missing", [])
            res["note"] = f"installed {missing}"
            self.save()

    def phase_build(self, arch: str | None) -> None:
        env = self.state["env"]
        arch = arch or cuda_arch(env)
        env["cuda_architectures_requested"] = arch
        if not arch:
            self.record("build", "failed", note="no compute capability from nvidia-smi or torch: pass --arch 90")
            return
        nvcc = find_nvcc()
        if nvcc is None:
            self.record("build", "failed", note="nvcc not found (PATH, CUDACXX, /usr/local/cuda/bin)")
            return
        self.env["CUDACXX"] = nvcc
        bdir = REPO / os.environ.get("GPU_CHECK_BUILD_DIR", f"build/gpu-check-{arch.replace(';', '_')}")
        gen = ["-G", "Ninja"] if shutil.which("ninja", path=self.env["PATH"]) else []
        if gen and (bdir / "CMakeCache.txt").exists() and "CMAKE_GENERATOR:INTERNAL=Ninja" not in \
                (bdir / "CMakeCache.txt").read_text(errors="replace"):
            gen = []  # keep the generator an earlier configure chose
        jobs = str(os.cpu_count() or 4)
        env["build_dir"] = str(bdir.relative_to(REPO)) if bdir.is_relative_to(REPO) else str(bdir)
        # the module needs the Python headers (python3.X-dev); GPU_CHECK_PYTHON_INCLUDE names a carried copy
        include = os.environ.get("GPU_CHECK_PYTHON_INCLUDE")
        minor = ".".join(str(env.get("python_version", "3")).split(".")[:2])
        hint = "" if env.get("python_h", True) or include else \
            f"Python.h is not in {env.get('python_include')}: install python{minor}-dev " \
            "(or set GPU_CHECK_PYTHON_INCLUDE to a folder holding it)"
        res = self.run("build", [
            ["cmake", "-S", str(REPO), "-B", str(bdir), *gen, "-DCSDKIT_CUDA=ON",
             f"-DCSDKIT_CUDA_ARCHITECTURES={arch}", "-DCMAKE_BUILD_TYPE=Release", "-DCSDKIT_BUILD_TESTS=ON",
             f"-DPython_EXECUTABLE={self.python}", *([f"-DPython_INCLUDE_DIR={include}"] if include else [])],
            ["cmake", "--build", str(bdir), "-j", jobs],
        ], note=hint)
        if res["status"] == "ok" and hint:
            res["note"] = ""
            self.save()

    def phase_verify(self) -> None:
        code = ("import csdkit, json; i = csdkit.build_info(); i['file'] = csdkit.__file__; "
                "i['has_cuda'] = csdkit.has_cuda(); print('GPU_CHECK_BUILD ' + json.dumps(i)); "
                "raise SystemExit(0 if i['has_cuda'] else 3)")
        res = self.run("verify", [[self.python, "-c", code]])
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            found = [ln for ln in f.read().splitlines() if ln.startswith("GPU_CHECK_BUILD ")]
        if found:
            self.state["env"]["csdkit_build"] = json.loads(found[-1].split(" ", 1)[1])
        if res["status"] == "failed" and res.get("rc") == 3:
            res["note"] = "the fresh build imports, but csdkit.has_cuda() is False"
        self.save()

    def phase_ctest(self) -> None:
        bdir = REPO / self.state["env"]["build_dir"]
        self.run("ctest", [["ctest", "--test-dir", str(bdir), "--output-on-failure"]])

    def phase_tests(self, pytest_args: list[str]) -> None:
        self.env["GPU_CHECK_PYTEST_LOG"] = str(self.tests_log)
        res = self.run("tests", [[self.python, "-m", "pytest", *pytest_args, "-p", "gpu_check_pytest",
                                  "-p", "no:cacheprovider", "-q"]])
        lines = self.tests_log.read_text(encoding="utf-8").splitlines() if self.tests_log.exists() else []
        self.state["tests"] = summarize_tests(lines)
        self.state["tests"]["command"] = "pytest " + shlex.join(pytest_args)
        t = self.state["tests"]
        res["note"] = (res["note"] + "; " if res["note"] else "") + \
            f"{t['passed']} passed, {t['failed']} failed, {t['errors']} errors, {t['skipped']} skipped"
        if res["status"] == "ok" and t["total"] == 0:
            res["status"], res["note"] = "failed", "no test ran"
        self.save()

    def phase_bench(self, suite: str, device: str) -> None:
        raw = self.work / f"bench-{suite}.json"
        raw.unlink(missing_ok=True)
        only = SUITE_ONLY.get(suite, []) if device == "cuda" else []
        cmd = [self.python, str(REPO / "benchmarks" / "run.py"), suite, "--device", device, "--quick",
               "--keep-going", "--json", str(raw)] + (["--only", *only] if only else [])
        res = self.run(f"bench-{suite}", [cmd])
        records = json.loads(raw.read_text()) if raw.exists() else []
        self.state["benchmarks"] = [r for r in self.state["benchmarks"] if r.get("suite") != suite] + records
        res["note"] = (res["note"] + "; " if res["note"] else "") + f"{len(records)} records"
        self.save()


# ---- helpers ---------------------------------------------------------------------------------------
def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def tool_version(path: str | None, pattern: str, group: int = 1) -> str | None:
    """``path --version`` matched against ``pattern``; None when the tool is absent or silent."""
    if not path:
        return None
    try:
        text = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(pattern, text)
    return m.group(group) if m else None


def find_nvcc() -> str | None:
    for cand in (os.environ.get("CUDACXX"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def nvidia_smi_gpus() -> dict:
    """Name, compute capability, memory and driver of each GPU, and the driver's CUDA version."""
    smi = os.environ.get("GPU_CHECK_NVIDIA_SMI", "nvidia-smi")
    out: dict = {"gpus": []}
    try:
        q = subprocess.run([smi, "--query-gpu=name,compute_cap,memory.total,driver_version",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        for line in q.stdout.strip().splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 4:
                out["gpus"].append({"name": parts[0], "compute_cap": parts[1], "memory": parts[2],
                                    "driver": parts[3]})
        head = subprocess.run([smi], capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"CUDA Version:\s*([\d.]+)", head)
        out["driver_cuda"] = m.group(1) if m else None
    except (OSError, subprocess.TimeoutExpired):
        pass
    return out


def cuda_arch(env: dict) -> str | None:
    """``CSDKIT_CUDA_ARCHITECTURES`` for the GPUs present: e.g. ``90-real`` (SASS for them only)."""
    caps = [g["compute_cap"] for g in env.get("gpus", []) if re.fullmatch(r"\d+\.\d+", g.get("compute_cap", ""))]
    if not caps and env.get("capability"):
        caps = [env["capability"]]
    archs = sorted({c.replace(".", "") for c in caps}, key=int)
    return ";".join(f"{a}-real" for a in archs) or None


def parse_timeouts(text: str) -> dict[str, float]:
    """``"tests=300,bench-guidance=200"`` -> the default limits with those replaced."""
    out = dict(TIMEOUTS)
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not sep or not (key in TIMEOUTS or key.startswith("bench-")) or seconds <= 0:
            raise SystemExit(f"gpu-check: GPU_CHECK_TIMEOUTS: expected NAME=SECONDS (NAME one of "
                             f"{sorted(TIMEOUTS)} or bench-<suite>, SECONDS > 0), got {item!r}")
        out[key] = seconds
    return out


# ---- commands --------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    check = Check(args.out, args.python, args.budget, parse_timeouts(os.environ.get("GPU_CHECK_TIMEOUTS", "")))
    if args.note:
        check.state["env"]["setup_notes"] = args.note
    _say(f"results go to {args.out} (budget {args.budget:.0f} s)")
    if check.phase_env(args.torch_choice, args.device):
        check.phase_deps()
        if args.skip_build:
            check.skip("build", "--skip-build: using the csdkit already importable")
        else:
            check.phase_build(args.arch)
        if args.skip_build or check.ok("build"):
            check.phase_verify()
            if check.ok("build"):
                check.phase_ctest()
        ready = check.ok("verify") or args.device == "cpu"  # a rehearsal has no CUDA to verify
        if ready:
            check.phase_tests(shlex.split(args.pytest_args))
            for suite in args.suites:
                check.phase_bench(suite, args.device)
        else:
            _say("no usable CUDA build of csdkit: tests and benchmarks not run")
    check.state["finished"] = True
    check.save()
    print(render_markdown(check.state), flush=True)
    ok, why = verdict(check.state)
    _say(f"{'PASS' if ok else 'FAIL'}: {why}; wrote {args.out}/gpu-check.md and gpu-check.json")
    return 0 if ok else 1


def cmd_record_failure(args: argparse.Namespace) -> int:
    """Writes the report of a check that stopped before the driver could run (no CUDA torch)."""
    args.out.mkdir(parents=True, exist_ok=True)
    env = nvidia_smi_gpus()
    if args.note:
        env["setup_notes"] = args.note
    state = {"schema": 1, "started": _now(), "updated": _now(), "finished": True, "budget_s": 0, "elapsed_s": 0,
             "env": env, "tests": None, "benchmarks": [],
             "phases": [{"name": args.phase, "status": "failed", "seconds": 0, "note": args.message}]}
    save_state(args.out, state)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    state = load_state(args.out)
    save_state(args.out, state)
    print(render_markdown(state))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the phases (gpu_check.sh calls this)")
    r.add_argument("--out", type=pathlib.Path, required=True, help="folder of gpu-check.json/.md/.log")
    r.add_argument("--python", default=sys.executable, help="the Python whose torch sees the GPU")
    r.add_argument("--torch-choice", default="", help="how that Python was chosen (for the report)")
    r.add_argument("--note", action="append", default=[], help="a setup note for the report (repeatable)")
    r.add_argument("--arch", help="CSDKIT_CUDA_ARCHITECTURES (default: the GPUs' compute capability, -real)")
    r.add_argument("--budget", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET", DEFAULT_BUDGET_S)))
    r.add_argument("--suites", nargs="*", default=default_suites(), help="default: %(default)s")
    r.add_argument("--pytest-args", default=os.environ.get("GPU_CHECK_PYTEST_ARGS", "-m cuda tests"))
    r.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                   help="benchmark device; cpu only for rehearsing the driver on a machine without a GPU")
    r.add_argument("--skip-build", action="store_true", help="use the csdkit already importable (rehearsals)")
    f = sub.add_parser("record-failure", help="report a check that could not start (gpu_check.sh)")
    f.add_argument("--out", type=pathlib.Path, required=True)
    f.add_argument("--phase", default="torch")
    f.add_argument("--message", required=True)
    f.add_argument("--note", action="append", default=[])
    p = sub.add_parser("report", help="re-render gpu-check.md from gpu-check.json")
    p.add_argument("out", type=pathlib.Path)
    args = ap.parse_args(argv)
    return {"run": cmd_run, "record-failure": cmd_record_failure, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
