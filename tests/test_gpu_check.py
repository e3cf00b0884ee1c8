"""`make gpu-check` without a GPU: its dry run, its torch choice, its phases and its report."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import gpu_check  # noqa: E402
from gpu_check_report import bench_rows, render_markdown, save_state, summarize_tests, verdict  # noqa: E402

SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _bash(env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK_") and k != "OUT"}
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**full, **env})


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(tmp_path):
    dest = tmp_path / "report"
    res = _bash({"GPU_CHECK_NVIDIA_SMI": str(tmp_path / "no-such-nvidia-smi"), "GPU_CHECK_DIR": str(dest)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "gpu-check: no CUDA GPU on this machine (nvidia-smi lists none): nothing to check, exiting 0"]
    assert res.stderr == ""
    assert not dest.exists()  # nothing ran, nothing written


def _fake_nvidia_smi(folder: pathlib.Path, driver_cuda: str) -> pathlib.Path:
    smi = folder / "nvidia-smi"
    smi.write_text("#!/usr/bin/env bash\ncase \"${1:-}\" in\n"
                   "  -L) echo 'GPU 0: NVIDIA H200 (UUID: GPU-fake)';;\n"
                   "  --query-gpu=*) echo 'NVIDIA H200, 9.0, 143771 MiB, 580.159.04';;\n"
                   f"  *) echo '| Driver Version: 580.159.04    CUDA Version: {driver_cuda} |';;\nesac\n")
    smi.chmod(0o755)
    return smi


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this torch sees a GPU")
@pytest.mark.parametrize(("driver_cuda", "tag"), [("13.0", "cu130"), ("12.5", "cu124")])
def test_a_gpu_without_cuda_torch_gets_the_exact_install_command(tmp_path, driver_cuda, tag):
    dest = tmp_path / "report"
    res = _bash({"GPU_CHECK_NVIDIA_SMI": str(_fake_nvidia_smi(tmp_path, driver_cuda)), "GPU_CHECK_DIR": str(dest),
                 "GPU_CHECK_PYTHON": sys.executable, "GPU_CHECK_WHEELS": str(tmp_path / "no-wheels")})
    assert res.returncode == 1, res.stdout + res.stderr
    assert "GPU: GPU 0: NVIDIA H200" in res.stdout
    assert f"pip install torch --index-url https://download.pytorch.org/whl/{tag}" in res.stdout
    assert f"{sys.executable}: torch " in res.stdout and "sees no GPU" in res.stdout
    state = json.loads((dest / "gpu-check.json").read_text())
    assert [(p["name"], p["status"]) for p in state["phases"]] == [("torch", "failed")]
    assert state["env"]["gpus"][0]["name"] == "NVIDIA H200" and state["env"]["driver_cuda"] == driver_cuda
    md = (dest / "gpu-check.md").read_text()
    assert "**FAIL**" in md and tag in md


# ---- the report, on synthetic phase results ----------------------------------------------------------
def _lines(*events: dict) -> list[str]:
    return [json.dumps(e) for e in events]


def _rep(nodeid, when, outcome, duration=0.01, message="", wasxfail=False):
    return {"event": "report", "nodeid": nodeid, "when": when, "outcome": outcome, "duration": duration,
            "message": message, "wasxfail": wasxfail}


SYNTHETIC_TESTS = _lines(
    {"event": "start", "nodeid": "tests/test_hash_grid.py::test_parity[cuda]"},
    _rep("tests/test_hash_grid.py::test_parity[cuda]", "setup", "passed"),
    _rep("tests/test_hash_grid.py::test_parity[cuda]", "call", "passed", 2.5),
    _rep("tests/test_hash_grid.py::test_parity[cuda]", "teardown", "passed"),
    _rep("tests/test_hash_grid.py::test_grad[cuda]", "setup", "passed"),
    _rep("tests/test_hash_grid.py::test_grad[cuda]", "call", "failed", 1.0, "AssertionError: max err 0.3"),
    _rep("tests/test_hash_grid.py::test_grad[cuda]", "teardown", "passed"),
    _rep("tests/test_raster_rasterize.py::test_a[cuda]", "setup", "failed", message="RuntimeError: CUDA oom"),
    _rep("tests/test_raster_rasterize.py::test_a[cuda]", "teardown", "passed"),
    _rep("tests/test_raster_rasterize.py::test_b[cuda]", "setup", "skipped", message="needs nvdiffrast"),
    _rep("tests/test_raster_rasterize.py::test_c[cuda]", "setup", "skipped", message="needs nvdiffrast"),
    _rep("tests/test_raster_rasterize.py::test_x[cuda]", "call", "skipped", message="known", wasxfail=True),
    {"event": "collect_error", "nodeid": "tests/test_marching_tetrahedra.py", "message": "ImportError: no dmtet"},
    {"event": "start", "nodeid": "tests/test_raster_texture.py::test_slow[cuda]"},
    _rep("tests/test_raster_texture.py::test_slow[cuda]", "setup", "passed"),
) + ['{"event": "report", "nodeid": "tests/test_raster_te']  # the line a kill cut short


def test_summarize_tests_counts_each_outcome_once():
    t = summarize_tests(SYNTHETIC_TESTS)
    assert (t["passed"], t["failed"], t["errors"], t["skipped"], t["xfailed"], t["unfinished"]) == (1, 1, 2, 2, 1, 1)
    assert t["total"] == 8 and t["exitstatus"] is None
    assert t["by_file"]["tests/test_hash_grid.py"]["passed"] == 1
    assert t["by_file"]["tests/test_hash_grid.py"]["failed"] == 1
    assert t["by_file"]["tests/test_marching_tetrahedra.py"]["errors"] == 1
    failed = {f["nodeid"]: (f["outcome"], f["message"]) for f in t["failures"]}
    assert failed["tests/test_hash_grid.py::test_grad[cuda]"] == ("failed", "AssertionError: max err 0.3")
    assert failed["tests/test_raster_rasterize.py::test_a[cuda]"][0] == "errors"
    assert failed["tests/test_raster_texture.py::test_slow[cuda]"][0] == "unfinished"
    assert t["skip_reasons"] == [["needs nvdiffrast", 2]]
    assert t["slowest"][0] == {"nodeid": "tests/test_hash_grid.py::test_parity[cuda]", "seconds": 2.52}


SYNTHETIC_BENCH = [
    {"suite": "hashgrid", "case": "fwd", "impl": "csdkit", "device": "cuda", "n": 65536, "median_ms": 0.5,
     "peak_mem_mb": 120.0, "baseline": False},
    {"suite": "hashgrid", "case": "fwd", "impl": "reference", "device": "cuda", "n": 65536, "median_ms": 10.0,
     "peak_mem_mb": 900.0, "baseline": True},
    {"suite": "hashgrid", "case": "fwd", "impl": "tinycudann", "device": "cuda", "n": 65536, "median_ms": 0.4,
     "peak_mem_mb": 100.0, "baseline": False},
    {"suite": "guidance", "case": "sd21-base_b1_512px", "impl": "csdkit", "device": "cuda", "n": 1,
     "median_ms": 52.0, "peak_mem_mb": 6100.0, "baseline": False},
    {"suite": "guidance", "case": "sd21-base_b1_512px", "impl": "three-call", "device": "cuda", "n": 1,
     "error": "OutOfMemoryError: CUDA out of memory"},
    {"suite": "texture", "case": "step", "impl": "csdkit", "device": "cuda", "n": 1, "median_ms": 180.0,
     "peak_mem_mb": 7000.0, "baseline": False},
]


def test_bench_rows_put_third_party_baselines_first_and_keep_errors():
    rows = bench_rows(SYNTHETIC_BENCH)
    assert [(r["suite"], r["baseline"]) for r in rows] == [
        ("hashgrid", "tinycudann"), ("hashgrid", "reference"), ("guidance", "three-call"), ("texture", None)]
    assert rows[0]["ratio"] == pytest.approx(0.8) and rows[1]["ratio"] == pytest.approx(20.0)
    assert rows[2]["csdkit_ms"] == 52.0 and rows[2]["ratio"] is None and "OutOfMemoryError" in rows[2]["error"]
    assert rows[3]["peak_mb"] == 7000.0 and rows[3]["baseline_ms"] is None


def _state(**over) -> dict:
    state = {"schema": 1, "started": "2026-12-02T00:00:00Z", "updated": "2026-12-02T00:05:00Z", "finished": True,
             "budget_s": 450, "elapsed_s": 301.0,
             "env": {"gpus": [{"name": "NVIDIA H200", "compute_cap": "9.0", "memory": "143771 MiB",
                               "driver": "580.159.04"}], "driver_cuda": "13.0", "torch": "2.11.0+cu130",
                     "torch_cuda": "13.0", "python": "/opt/torch/.venv/bin/python3", "python_version": "3.12.3",
                     "torch_choice": "python3: torch sees 1 GPU", "nvcc": "13.0.88",
                     "baselines": {"tinycudann": True, "nerfacc": False, "nvdiffrast": False},
                     "csdkit_build": {"version": "0.1.0", "cuda_compiled": True, "cuda_architectures": ["90-real"],
                                      "has_cuda": True}},
             "phases": [{"name": "env", "status": "ok", "seconds": 9.0, "note": ""},
                        {"name": "build", "status": "ok", "seconds": 80.0, "limit_s": 300, "note": ""},
                        {"name": "tests", "status": "failed", "seconds": 120.0, "limit_s": 240, "note": "exit 1"},
                        {"name": "bench-texture", "status": "timeout", "seconds": 120.0, "limit_s": 120,
                         "note": "stopped at its 120 s limit"}],
             "tests": summarize_tests(SYNTHETIC_TESTS), "benchmarks": SYNTHETIC_BENCH}
    state.update(over)
    return state


def test_markdown_table_from_synthetic_phase_results(tmp_path):
    state = _state()
    ok, why = verdict(state)
    assert not ok and why == "tests failed, bench-texture timeout"
    md = render_markdown(state)
    assert md.startswith("# csdkit GPU check\n\n**FAIL**: tests failed, bench-texture timeout")
    assert "| GPU | NVIDIA H200 (compute capability 9.0, 143771 MiB, driver 580.159.04, CUDA <= 13.0) |" in md
    assert "| torch | 2.11.0+cu130 (CUDA 13.0), /opt/torch/.venv/bin/python3 (Python 3.12.3) |" in md
    assert "CUDA kernels for 90-real, has_cuda() True" in md
    assert "| bench-texture | timeout | 120.0 | 120 | stopped at its 120 s limit |" in md
    assert "**1 passed, 1 failed, 2 errors, 2 skipped**, 1 xfailed, 1 unfinished (stopped) of 8" in md
    assert "| tests/test_hash_grid.py | hash grid | 1 | 1 | 0 | 0 |" in md
    assert "| tests/test_marching_tetrahedra.py | marching tetrahedra | 0 | 0 | 1 | 0 |" in md
    assert "`test_volrend_marching.py` (ray marching)" in md  # no test ran from it: said so
    assert "| hashgrid | fwd | 65536 | 0.500 | 120 | tinycudann | 0.400 | 0.80x |" in md
    assert "| hashgrid | fwd | 65536 | 0.500 | 120 | reference | 10.00 | 20.00x |" in md
    assert "| guidance | sd21-base_b1_512px | 1 | 52.00 | 6100 | three-call | - | - | **error**: three-call: " \
           "OutOfMemoryError" in md
    assert "Texturing (sd21-base fp16, 1 view of 512x512, 1024 texture): **0.180 s per step**." in md
    save_state(tmp_path, state)
    assert json.loads((tmp_path / "gpu-check.json").read_text()) == state
    assert (tmp_path / "gpu-check.md").read_text() == md + "\n"
    passing = _state(phases=[{"name": "env", "status": "ok", "seconds": 1.0, "note": ""}],
                     tests=summarize_tests(SYNTHETIC_TESTS[:4]))
    assert verdict(passing) == (True, "every phase passed (1 CUDA tests passed)")
    assert render_markdown(passing).startswith("# csdkit GPU check\n\n**PASS**")


# ---- the driver's phases, on tiny commands -----------------------------------------------------------
def test_phases_keep_their_results_through_a_failure_a_timeout_and_an_empty_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "MIN_PHASE_S", 1)
    check = gpu_check.Check(tmp_path, sys.executable, budget_s=60, timeouts=dict(gpu_check.TIMEOUTS))
    ok = check.run("first", [[sys.executable, "-c", "print('hello from first')"]], limit=20)
    bad = check.run("second", [[sys.executable, "-c", "raise SystemExit(7)"]], limit=20)
    slow = check.run("third", [[sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]],
                     limit=2)
    assert (ok["status"], bad["status"], bad["rc"], slow["status"]) == ("ok", "failed", 7, "timeout")
    assert slow["seconds"] < 15
    check.deadline = 0.0  # the budget is spent: the next phase is not started
    skipped = check.run("fourth", [[sys.executable, "-c", "print('never')"]])
    assert skipped["status"] == "skipped" and "budget" in skipped["note"]
    state = json.loads((tmp_path / "gpu-check.json").read_text())
    assert [(p["name"], p["status"]) for p in state["phases"]] == [
        ("first", "ok"), ("second", "failed"), ("third", "timeout"), ("fourth", "skipped")]
    log = (tmp_path / "gpu-check.log").read_text()
    assert "hello from first" in log and "started" in log and "never" not in log
    assert "| third | timeout |" in (tmp_path / "gpu-check.md").read_text()


def test_pytest_plugin_records_a_real_run(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_ok():\n    assert 1 + 1 == 2\n"
        "def test_bad():\n    assert 1 + 1 == 3, 'arithmetic'\n"
        "@pytest.mark.skip(reason='not here')\ndef test_skip():\n    pass\n")
    log = tmp_path / "tests.jsonl"
    env = {**os.environ, "GPU_CHECK_PYTEST_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "gpu_check_pytest", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_sample.py")],
                         capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    t = summarize_tests(log.read_text().splitlines())
    assert (t["passed"], t["failed"], t["skipped"], t["errors"], t["exitstatus"]) == (1, 1, 1, 0, 1)
    assert "arithmetic" in t["failures"][0]["message"]
    assert t["skip_reasons"] == [["not here", 1]]


def test_arch_and_timeouts():
    two = {"gpus": [{"compute_cap": "9.0"}, {"compute_cap": "8.6"}, {"compute_cap": "9.0"}]}
    assert gpu_check.cuda_arch(two) == "86-real;90-real"
    assert gpu_check.cuda_arch({"gpus": [], "capability": "8.9"}) == "89-real"
    assert gpu_check.cuda_arch({"gpus": [{"compute_cap": "[N/A]"}]}) is None
    limits = gpu_check.parse_timeouts("tests=300, bench-guidance=200")
    assert limits["tests"] == 300 and limits["bench-guidance"] == 200 and limits["build"] == gpu_check.TIMEOUTS["build"]
    assert gpu_check.parse_timeouts("bench-marching_tets=30")["bench-marching_tets"] == 30
    for bad in ("nonsense=3", "tests", "tests=soon", "tests=0"):
        with pytest.raises(SystemExit, match="NAME=SECONDS"):
            gpu_check.parse_timeouts(bad)
    suites = gpu_check.default_suites()
    assert suites[:6] == list(gpu_check.PREFERRED_SUITES) and len(set(suites)) == len(suites)
