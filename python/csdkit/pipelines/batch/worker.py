"""One item in its own process: ``python -m csdkit.pipelines.batch._entry REQUEST.json`` runs :func:`main`.

The batch process (or a Ray task) starts one worker per item attempt, in a new session (its own process
group, so a timeout kills the item's whole process tree and a Ctrl-C at the terminal reaches only the
batch, which then asks its workers to checkpoint and stop). The worker never outlives the process that
started it: the worker sets ``PR_SET_PDEATHSIG`` first thing (Linux: SIGKILL when the thread that
started it dies), then checks that its parent is still the one that started it (the start-up race),
and a watch thread exits when the parent pid changes (other systems, and belt and braces).

The worker writes its outcome atomically to the request's ``result`` path; a worker that dies without one
(segfault, ``os._exit``, the kernel's OOM killer, a timeout) is described from its exit status.

Test hooks (test-only, honoured only with ``CSDKIT_BATCH_TEST_HOOKS=1``): a manifest item's
``"_test_crash"`` makes its worker ``"segfault"`` (a real invalid read), ``"exit"`` (``os._exit(3)``),
``"raise"`` (a RuntimeError), ``"hang"`` (sleep until killed, for timeouts) or ``"oom"`` (allocate past
an address-space limit set for the purpose) before the job starts.
"""

from __future__ import annotations

import ctypes
import faulthandler
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..._build import set_num_threads
from ...training.checkpoint import atomic_write_bytes, list_checkpoints
from .jobs import accepts, get_job

_PR_SET_PDEATHSIG = 1


def _set_pdeathsig() -> None:
    """SIGKILL this process when the parent (thread) that started it dies (Linux only; survives exec)."""
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _watch_parent(parent_pid: int) -> None:
    _set_pdeathsig()
    if os.getppid() != parent_pid:  # the parent died before PR_SET_PDEATHSIG took effect
        os._exit(70)

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(70)

    threading.Thread(target=watch, name="csdkit-parent-watch", daemon=True).start()


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


_SIGNAL_HINTS = {"SIGSEGV": "segmentation fault", "SIGBUS": "bus error", "SIGABRT": "aborted",
                 "SIGKILL": "the kernel's out-of-memory killer, or kill -9", "SIGFPE": "arithmetic fault",
                 "SIGILL": "illegal instruction"}


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    text = [t.strip() for t in text if t.strip() and not t.startswith("====")]
    tail = text[-lines:]
    return " | ".join(tail)[-400:]


# ---- the parent's side ------------------------------------------------------------------------------
def worker_env(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker: the batch's, with thread counts (and e.g. CUDA_VISIBLE_DEVICES) set."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CSDKIT_NUM_THREADS"):
        env[k] = str(threads)
    env.update(extra or {})
    return env


def start_worker(request: dict[str, Any], env: dict[str, str]) -> subprocess.Popen:
    """Start the worker of ``request`` (see :func:`main` for its keys) and return its process.

    Its output goes to ``request["log"]`` (appended, one header line per attempt); a previous
    attempt's result file is removed first.
    """
    result = Path(request["result"])
    result.parent.mkdir(parents=True, exist_ok=True)
    result.unlink(missing_ok=True)
    req_path = result.with_name(result.name.replace(".result.json", ".request.json"))
    atomic_write_bytes(req_path, json.dumps({**request, "parent_pid": os.getpid()}, indent=1).encode())
    log = open(request["log"], "ab")  # noqa: SIM115 - handed to the child, closed below
    log.write(f"==== csdkit batch: item {request['id']} attempt {request['attempt']} "
              f"({time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode())
    log.flush()
    try:
        return subprocess.Popen([sys.executable, "-m", "csdkit.pipelines.batch._entry", str(req_path)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, close_fds=True)
    finally:
        log.close()


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the worker's whole process group (it leads its own session)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def collect(proc: subprocess.Popen, request: dict[str, Any], *, timed_out: float | None = None) -> dict[str, Any]:
    """The outcome of a finished worker: ``{"status": "done"|"failed"|"interrupted", "error", "outputs",
    "seconds", "info"}`` from its result file, or else from its exit status (and its log's last lines)."""
    code = proc.wait()
    if timed_out is not None:
        return {"status": "failed", "error": f"timed out after {timed_out:g} s (the worker was killed)",
                "outputs": {}, "seconds": None, "info": {"exit": code}}
    return read_outcome(request, code)


def read_outcome(request: dict[str, Any], code: int | None) -> dict[str, Any]:
    """The outcome recorded in the request's result file, or one built from the exit ``code``."""
    path = Path(request["result"])
    try:
        out = json.loads(path.read_text())
        if out.get("attempt") == request["attempt"]:
            return out
    except (OSError, ValueError):
        pass
    if code is None:
        return {"status": "failed", "error": "the worker left no result", "outputs": {}, "seconds": None,
                "info": {}}
    log = Path(request["log"])
    if code < 0:
        name = _signal_name(-code)
        hint = _SIGNAL_HINTS.get(name)
        error = f"worker crashed: killed by {name}" + (f" ({hint})" if hint else "") + f"; see {log}"
    else:
        error = f"worker exited with code {code} without a result (os._exit or a fatal error in native code)"
        tail = _log_tail(log)
        error += f"; last output: {tail}" if tail else f"; see {log}"
    return {"status": "failed", "error": error, "outputs": {}, "seconds": None, "info": {"exit": code}}


def run_blocking(request: dict[str, Any], env: dict[str, str], timeout: float | None) -> dict[str, Any]:
    """Start a worker, wait for it (killing its group after ``timeout`` seconds) and return its outcome."""
    proc = start_worker(request, env)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        return collect(proc, request, timed_out=timeout)
    except BaseException:
        kill_group(proc)
        proc.wait()
        raise
    return collect(proc, request)


# ---- the worker's side ------------------------------------------------------------------------------
def _test_crash(mode: str) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core files from the deliberate crashes
    print(f"csdkit batch: test hook _test_crash={mode}", flush=True)
    if mode == "segfault":
        ctypes.string_at(0)
    elif mode == "exit":
        os._exit(3)
    elif mode == "raise":
        raise RuntimeError("test hook: deliberate failure")
    elif mode == "hang":
        while True:
            time.sleep(1)
    elif mode == "oom":
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = 4 << 30
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
        np.ones(8 << 30, dtype=np.uint8)


def _relative(path: Any, root: Path) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


def run_request(req: dict[str, Any]) -> dict[str, Any]:
    """Run one item in this process and return its outcome (exceptions become ``failed``)."""
    threads = int(req.get("threads") or 1)
    torch.set_num_threads(threads)
    set_num_threads(threads)
    t0 = time.perf_counter()
    run_dir = Path(req["run_dir"])
    root = Path(req["out_root"]).resolve()
    info: dict[str, Any] = {"pid": os.getpid(), "threads": threads}
    try:
        if req.get("test_crash") and os.environ.get("CSDKIT_BATCH_TEST_HOOKS") == "1":
            _test_crash(req["test_crash"])
        spec = get_job(req["job"])
        kwargs = dict(req["kwargs"])
        mesh = kwargs.get("mesh")
        if isinstance(mesh, str) and not mesh.startswith("@") and not Path(mesh).is_file():
            raise FileNotFoundError(f"mesh file not found: {mesh}")
        checkpoints = list_checkpoints(run_dir / "checkpoints")
        resume = bool(checkpoints)
        info["resumed_from"] = checkpoints[-1][0] if checkpoints else None
        if accepts(spec, "quiet"):
            kwargs["quiet"] = True
        print(f"csdkit batch: {req['job']} -> {run_dir}" + (f" (resuming from step {info['resumed_from']})"
                                                             if resume else ""), flush=True)
        result = spec.fn(**kwargs, out_dir=run_dir, resume=resume, progress=False)
        status = getattr(result, "status", "completed")
        outputs = {k: _relative(v, root) for k, v in (getattr(result, "files", None) or {}).items()}
        if hasattr(result, "steps"):
            info["steps"] = int(result.steps)
        seconds = time.perf_counter() - t0
        if status == "completed":
            return {"status": "done", "error": None, "outputs": outputs, "seconds": seconds, "info": info}
        return {"status": "interrupted", "error": f"interrupted ({status})", "outputs": outputs,
                "seconds": seconds, "info": info}
    except KeyboardInterrupt:
        return {"status": "interrupted", "error": "interrupted", "outputs": {},
                "seconds": time.perf_counter() - t0, "info": info}
    except Exception as exc:  # noqa: BLE001 - any failure of the item is its outcome
        traceback.print_exc()
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "outputs": {},
                "seconds": time.perf_counter() - t0, "info": info}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    req = json.loads(Path(argv[0]).read_text())
    _watch_parent(int(req["parent_pid"]))
    faulthandler.enable()  # a segfault prints the Python stack to the item's log, then still kills us
    outcome = run_request(req)
    outcome["attempt"] = req["attempt"]
    atomic_write_bytes(req["result"], json.dumps(outcome, indent=1).encode())
    return 0 if outcome["status"] == "done" else 1


if __name__ == "__main__":
    raise SystemExit(main())
