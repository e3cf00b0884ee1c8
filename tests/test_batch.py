"""``csdkit batch``: manifests, crash isolation, kill + resume, retries, timeouts, the Ray engine.

Items are texture jobs with tiny settings (4-6 steps, 32x32 renders, a 64 texture) on the built-in
meshes; the batch runs in a subprocess (``python -m csdkit batch``) where a test kills it or reads its
exit code. The crash items use the test-only hook ``_test_crash`` (honoured with CSDKIT_BATCH_TEST_HOOKS=1).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import csdkit
from csdkit.pipelines.batch import (
    BatchLocked,
    ManifestError,
    Store,
    batch,
    get_job,
    load_manifest,
    register_job,
    stable_id,
)
from csdkit.pipelines.batch.jobs import JOB_TABLE

TINY = {"steps": 4, "resolution": 32, "texture_size": 64, "batch_size": 1}
ROOT = Path(__file__).resolve().parents[1]


def _env(hooks: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("CSDKIT_BATCH_TEST_HOOKS", None)
    if hooks:
        env["CSDKIT_BATCH_TEST_HOOKS"] = "1"
    return env


@pytest.fixture
def hooks(monkeypatch):
    monkeypatch.setenv("CSDKIT_BATCH_TEST_HOOKS", "1")
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cli(manifest: Path, out: Path, *args: str, hooks: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "csdkit", "batch", str(manifest), "--out", str(out),
                           "--no-progress", "--threads", "1", *args], env=_env(hooks), capture_output=True, text=True,
                          timeout=300)


def _rows(out: Path) -> dict[str, dict]:
    db = sqlite3.connect(out / "batch.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return {r["id"]: dict(r) for r in db.execute("SELECT * FROM items")}
    finally:
        db.close()


def _done_events(out: Path) -> dict[str, int]:
    db = sqlite3.connect(out / "batch.sqlite")
    try:
        counts: dict[str, int] = {}
        for (i,) in db.execute("SELECT id FROM events WHERE event = 'done'"):
            counts[i] = counts.get(i, 0) + 1
        return counts
    finally:
        db.close()


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _workers_of(out: Path) -> list[int]:
    """pids of live batch workers whose request lies in ``out`` (read from /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and b"csdkit.pipelines.batch._entry" in cmd and any(str(out).encode() in c for c in cmd):
            pids.append(int(proc.name))
    return pids


# ---- manifests and the job table --------------------------------------------------------------------
def test_manifest_errors_have_line_numbers(tmp_path, monkeypatch):
    monkeypatch.delenv("CSDKIT_BATCH_TEST_HOOKS", raising=False)
    m = tmp_path / "m.jsonl"
    m.write_text('{"mesh": "@sphere", "prompt": "a red sphere", "steps": 4}\n'
                 "\n# a comment line\n"
                 '{"mesh": "@sphere", "prompt": "a red sphere", "stepz": 4}\n'
                 '{"mesh": "@torus", "prompt": oops}\n'
                 '{"mesh": "@torus"}\n'
                 '{"mesh": "@sphere", "prompt": "a crash", "_test_crash": "segfault"}\n'
                 '{"mesh": "@sphere", "prompt": "a red sphere", "steps": 4}\n'
                 '{"mesh": "@sphere", "prompt": "x", "job": "no-such-job"}\n')
    with pytest.raises(ManifestError) as info:
        load_manifest(m)
    errors = info.value.errors
    assert len(errors) == 6, errors
    assert errors[0].startswith(f"{m}:4: unknown option 'stepz'") and "steps" in errors[0]
    assert errors[1].startswith(f"{m}:5: not valid JSON")
    assert errors[2] == f"{m}:6: missing required field 'prompt' for job 'texture'"
    assert errors[3].startswith(f"{m}:7: '_test_crash' is a test hook")
    assert errors[4].startswith(f"{m}:8: id ") and "line 1" in errors[4]
    assert errors[5].startswith(f"{m}:9: unknown job 'no-such-job'")

    out = tmp_path / "out"
    r = _cli(m, out, hooks=False)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and f"{m}:4: unknown option 'stepz'" in r.stderr and "5 more" in r.stderr
    assert not out.exists()  # nothing ran, nothing was written


def test_csv_manifest_types_aliases_and_stable_ids(tmp_path):
    m = tmp_path / "m.csv"
    (tmp_path / "meshes").mkdir()
    m.write_text("mesh,prompt,steps,lr,negative,id\n"
                 "meshes/a.obj,a red vase,8,0.05,,\n"
                 '@torus,"a blue torus, shiny",6,,null,torus1\n')
    a, b = load_manifest(m)
    assert a.fields == {"mesh": "meshes/a.obj", "prompt": "a red vase", "steps": 8, "lr": 0.05}
    assert a.kwargs()["mesh"] == str(tmp_path / "meshes" / "a.obj")  # relative to the manifest's folder
    assert b.id == "torus1" and b.fields["negative_prompt"] is None and b.line == 3
    assert a.id == stable_id("texture", a.fields) and a.id.startswith("a-a-red-vase-")
    assert stable_id("texture", {**a.fields, "steps": 9}) != a.id
    with pytest.raises(ManifestError, match=r"m2\.csv:2: expected 2 cells"):
        (tmp_path / "m2.csv").write_text("mesh,prompt\n@sphere,a,b\n")
        load_manifest(tmp_path / "m2.csv")
    with pytest.raises(ManifestError, match=r"expected a \.jsonl or \.csv"):
        (tmp_path / "m.txt").write_text("x")
        load_manifest(tmp_path / "m.txt")


def test_job_table_is_looked_up_by_name():
    spec = get_job("texture")
    assert spec.fn is csdkit.pipelines.texture
    assert spec.required == ("mesh", "prompt")
    assert {"steps", "seed", "up", "negative_prompt"} <= set(spec.options)
    assert not {"out_dir", "resume", "progress", "callback"} & set(spec.options)
    assert spec.aliases == {"negative": "negative_prompt", "model": "prior"}
    register_job("not_built", "csdkit.pipelines.not_built_yet:run")
    try:
        with pytest.raises(ValueError, match="job 'not_built' is not available in this build"):
            get_job("not_built")
        with pytest.raises(ManifestError, match="<manifest>:1: job 'not_built' is not available"):
            load_manifest([{"job": "not_built", "prompt": "x"}])
    finally:
        JOB_TABLE.pop("not_built")


def test_bad_arguments(tmp_path):
    m = _write(tmp_path / "m.jsonl", [{"mesh": "@sphere", "prompt": "a red sphere"}])
    for kw, match in (({"engine": "dask"}, "engine"), ({"workers": 0}, "workers"), ({"timeout": -1}, "timeout"),
                      ({"max_attempts": 0}, "max_attempts"), ({"ray_address": "auto"}, "ray_address")):
        with pytest.raises(ValueError, match=match):
            batch(m, tmp_path / "out", progress=False, quiet=True, **kw)
    with Store(tmp_path / "busy"):  # a live batch holds the folder: a second one is refused at once
        with pytest.raises(BatchLocked, match="another csdkit batch is running"):
            batch(m, tmp_path / "busy", progress=False, quiet=True)


def test_local_slots_one_item_per_gpu_else_cores_split(monkeypatch):
    from csdkit.pipelines.batch import local

    monkeypatch.setattr(local, "cpu_count", lambda: 16)
    monkeypatch.setattr(local.torch.cuda, "is_available", lambda: False)
    cpu = local.local_slots(4)
    assert [s["threads"] for s in cpu] == [4] * 4 and {s["env"]["CUDA_VISIBLE_DEVICES"] for s in cpu} == {""}
    assert len(local.local_slots(None)) == 4 and local.local_slots(3, threads=1)[0]["threads"] == 1
    monkeypatch.setattr(local.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(local.torch.cuda, "device_count", lambda: 2)
    gpu = local.local_slots(None)
    assert [s["env"]["CUDA_VISIBLE_DEVICES"] for s in gpu] == ["0", "1"] and gpu[0]["threads"] == 8
    assert len(local.local_slots(8)) == 2 and len(local.local_slots(1)) == 1


# ---- the six items: crashes are isolated, the batch finishes with exit 1 ---------------------
SIX = [
    {"id": "sphere", "mesh": "@sphere", "prompt": "a red sphere", **TINY},
    {"id": "torus", "mesh": "@torus", "prompt": "a blue torus", "seed": 1, **TINY},
    {"id": "broken", "mesh": "broken.obj", "prompt": "a green cube", **TINY},
    {"id": "missing", "mesh": "missing.obj", "prompt": "a green cube", **TINY},
    {"id": "segv", "mesh": "@sphere", "prompt": "a yellow sphere", "_test_crash": "segfault", **TINY},
    {"id": "exit", "mesh": "@sphere", "prompt": "a pink sphere", "_test_crash": "exit", **TINY},
]


def _six(tmp_path: Path) -> Path:
    (tmp_path / "broken.obj").write_text("this is not a mesh\nv 1 2\n")
    return _write(tmp_path / "six.jsonl", SIX)


def _check_six(out: Path) -> dict[str, dict]:
    summary = json.loads((out / "summary.json").read_text())
    items = {i["id"]: i for i in summary["items"]}
    assert {i: items[i]["status"] for i in items} == {"sphere": "done", "torus": "done", "broken": "failed",
                                                       "missing": "failed", "segv": "failed", "exit": "failed"}
    assert summary["counts"]["done"] == 2 and summary["counts"]["failed"] == 4
    assert "broken.obj" in items["broken"]["error"] and "no faces" in items["broken"]["error"]
    assert "mesh file not found" in items["missing"]["error"]
    assert "SIGSEGV" in items["segv"]["error"]
    assert "exited with code 3" in items["exit"]["error"]
    for i in ("sphere", "torus"):
        assert set(items[i]["outputs"]) == {"glb", "obj", "turntable", "report"}
        for rel in items[i]["outputs"].values():
            assert (out / rel).is_file()
        assert (out / "items" / i / "textured.png").is_file()
    page = (out / "index.html").read_text()
    assert 'src="items/sphere/turntable.png"' in page and 'href="items/torus/report.html"' in page
    assert "SIGSEGV" in page and "a blue torus" in page
    return items


@pytest.fixture(scope="module")
def six_local(tmp_path_factory):
    """The six items run once by the local engine (shared by the rerun test and the Ray comparison)."""
    tmp = tmp_path_factory.mktemp("six")
    m, out = _six(tmp), tmp / "local"
    r = _cli(m, out, "--workers", "2")
    return m, out, r


def test_six_items_crashes_isolated_rerun_skips_done(six_local):
    m, out, r = six_local
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 done, 4 failed" in r.stdout and "failed  segv" in r.stdout
    _check_six(out)
    before = _snapshot(out / "items" / "sphere") | _snapshot(out / "items" / "torus")

    r = _cli(m, out, "--workers", "2")  # again: done items skipped, failed ones not retried
    assert r.returncode == 1 and "2 skipped" in r.stdout and "not retried" in r.stdout
    rows = _rows(out)
    assert all(row["attempts"] == 1 for row in rows.values())
    assert _snapshot(out / "items" / "sphere") | _snapshot(out / "items" / "torus") == before
    r = _cli(m, out, "--retry-failed", "--max-attempts", "1")  # attempts exhausted: nothing runs
    assert r.returncode == 1 and "ran 0" in r.stdout
    assert _done_events(out) == {"sphere": 1, "torus": 1}


def test_ray_engine_matches_local(six_local, tmp_path):
    import ray  # the Ray engine is an extra; `make venv` installs it so this test runs

    assert ray.__version__
    m, local_out, _ = six_local
    r_ray = _cli(m, tmp_path / "ray", "--engine", "ray", "--workers", "2")
    assert r_ray.returncode == 1, r_ray.stdout + r_ray.stderr
    local, on_ray = _check_six(local_out), _check_six(tmp_path / "ray")
    assert {i: v["outputs"] for i, v in local.items()} == {i: v["outputs"] for i, v in on_ray.items()}
    for i in ("sphere", "torus"):  # CPU runs are deterministic: the same texture bytes on both engines
        assert (local_out / "items" / i / "textured.png").read_bytes() == \
            (tmp_path / "ray" / "items" / i / "textured.png").read_bytes()
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert summary["engine"] == "ray" and summary["cluster"]["in_flight"] == 2


# ---- SIGKILL the batch partway, run again ----------------------------------------------------------
def test_sigkill_then_rerun_resumes_and_keeps_finished_outputs(tmp_path):
    rows = [{"id": "first", "mesh": "@sphere", "prompt": "a red sphere", **TINY},
            {"id": "long", "mesh": "@torus", "prompt": "a green torus", **{**TINY, "steps": 60},
             "checkpoint_every": 5},
            {"id": "last", "mesh": "@sphere", "prompt": "a blue sphere", "seed": 2, **TINY}]
    m, out = _write(tmp_path / "m.jsonl", rows), tmp_path / "out"
    cmd = [sys.executable, "-m", "csdkit", "batch", str(m), "--out", str(out), "--workers", "1", "--threads", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        ckpts = out / "items" / "long" / "checkpoints"
        while time.monotonic() < deadline:  # kill once 'first' is done and 'long' has a checkpoint
            if (out / "summary.json").exists() and ckpts.is_dir() and any(ckpts.glob("step_*.pt")):
                break
            assert proc.poll() is None, "the batch ended before it could be killed"
            time.sleep(0.1)
        else:
            pytest.fail("the batch did not reach the kill point")
        workers = _workers_of(out)
        assert len(workers) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10  # the worker dies with its batch (PR_SET_PDEATHSIG / parent watch)
    while _workers_of(out) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _workers_of(out) == []
    state = _rows(out)
    assert state["first"]["status"] == "done" and state["long"]["status"] == "running"
    assert state["last"]["status"] == "pending"
    first_before = _snapshot(out / "items" / "first")

    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 done, 0 failed, 1 skipped" in r.stdout
    state = _rows(out)
    assert {i: s["status"] for i, s in state.items()} == {"first": "done", "long": "done", "last": "done"}
    assert _done_events(out) == {"first": 1, "long": 1, "last": 1}  # every item done exactly once
    assert _snapshot(out / "items" / "first") == first_before  # same bytes, same mtimes
    info = json.loads(state["long"]["info"])
    assert info["resumed_from"] >= 5 and info["steps"] == 60  # resumed from its checkpoint, not restarted
    steps = [json.loads(line)["step"] for line in (out / "items" / "long" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 59  # no step logged twice across the two sessions
    assert state["long"]["attempts"] == 2 and state["first"]["attempts"] == 1


def test_ctrl_c_checkpoints_running_items_and_exits_130(tmp_path):
    rows = [{"id": "long", "mesh": "@torus", "prompt": "a green torus", **{**TINY, "steps": 400},
             "checkpoint_every": 50}]
    m, out = _write(tmp_path / "m.jsonl", rows), tmp_path / "out"
    cmd = [sys.executable, "-m", "csdkit", "batch", str(m), "--out", str(out), "--threads", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        metrics = out / "items" / "long" / "metrics.jsonl"
        deadline = time.monotonic() + 120
        while not (metrics.exists() and metrics.read_text().count("\n") >= 1) and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C at the terminal sends (workers are in their own sessions)
        text, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, text
    assert "interrupted; run the same command again to resume" in text
    row = _rows(out)["long"]
    assert row["status"] == "pending" and row["error"].startswith("interrupted")
    ckpts = sorted((out / "items" / "long" / "checkpoints").glob("step_*.pt"))
    assert ckpts and int(ckpts[-1].stem[5:]) > 50  # the worker checkpointed when it stopped (after step 50)
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    assert _workers_of(out) == []


# ---- retries and timeouts (in-process API) ----------------------------------------------------------
def test_retry_failed_up_to_max_attempts_and_timeout(tmp_path, hooks):
    items = [{"id": "raises", "mesh": "@sphere", "prompt": "a red sphere", "_test_crash": "raise", **TINY},
             {"id": "hangs", "mesh": "@sphere", "prompt": "a red sphere", "_test_crash": "hang", **TINY}]
    out = tmp_path / "out"
    res = batch(items, out, workers=2, threads=1, timeout=8, progress=False, quiet=True)
    assert res.exit_code == 1 and sorted(res.failed) == ["hangs", "raises"]
    by_id = {i["id"]: i for i in res.items}
    assert by_id["raises"]["error"] == "RuntimeError: test hook: deliberate failure"
    assert by_id["hangs"]["error"].startswith("timed out after 8 s")
    res = batch(items[:1], out, retry_failed=True, max_attempts=2, threads=1, progress=False, quiet=True)
    assert res.counts["ran"] == 1 and res.items[0]["attempts"] == 2 and res.items[0]["status"] == "failed"
    res = batch(items[:1], out, retry_failed=True, max_attempts=2, threads=1, progress=False, quiet=True)
    assert res.counts["ran"] == 0 and res.items[0]["attempts"] == 2
    assert "Traceback" in (out / "logs" / "raises.log").read_text()
    changed = [{**items[0], "steps": 5}]  # same id, other inputs: refused before anything runs
    with pytest.raises(ManifestError, match="already ran .* with other inputs"):
        batch(changed, out, progress=False, quiet=True)
