"""The report of ``make gpu-check``: its state file, the test summary and the Markdown tables.

Standard library only. The state (``gpu-check.json``) is one dict::

    {"schema": 1, "started", "updated", "finished": bool, "budget_s", "elapsed_s",
     "env": {"gpus": [{"name", "compute_cap", "memory", "driver"}], "driver_cuda", "torch", "torch_cuda",
             "python", "python_version", "torch_choice", "nvcc", "cmake", "baselines": {name: bool},
             "csdkit_build": csdkit.build_info(), ...},
     "phases": [{"name", "status": "ok"|"failed"|"timeout"|"skipped", "seconds", "note", ...}],
     "tests": summarize_tests(...) or None,
     "benchmarks": [benchmarks/run.py records: {suite, case, impl, n, median_ms, peak_mem_mb, baseline}
                    or {suite, case, impl, error}]}

:func:`render_markdown` turns it into ``gpu-check.md``; :func:`save_state` writes both files.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
from collections.abc import Iterable

# what each test file proves on the GPU (the parity tests of each kernel)
KERNELS = {
    "test_hash_grid.py": "hash grid",
    "test_volrend_marching.py": "ray marching",
    "test_volrend_compositing.py": "compositing",
    "test_volrend_occupancy.py": "occupancy grid",
    "test_raster_rasterize.py": "rasterize",
    "test_raster_interpolate.py": "interpolate",
    "test_raster_texture.py": "texture sampling",
    "test_marching_tetrahedra.py": "marching tetrahedra",
}
# the other test files with CUDA cases
LABELS = {**KERNELS, "test_dmtet.py": "DMTet", "test_mesh_renderer.py": "mesh renderer",
          "test_volume_renderer.py": "volume renderer", "test_implicit_volume.py": "implicit volume",
          "test_guidance_formula.py": "CSD/SDS formulas", "test_guidance_priors.py": "diffusion priors",
          "test_priors.py": "priors", "test_miniprior.py": "MiniPrior", "test_shading.py": "shading",
          "test_mesh_io.py": "meshes", "test_uv_export.py": "UV export"}
THIRD_PARTY = ("tinycudann", "nerfacc", "nvdiffrast", "kaolin")
OUTCOMES = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed", "unfinished")
MAX_FAILURES_SHOWN = 15


def load_state(folder: pathlib.Path) -> dict:
    return json.loads((pathlib.Path(folder) / "gpu-check.json").read_text(encoding="utf-8"))


def save_state(folder: pathlib.Path, state: dict) -> None:
    """Writes ``gpu-check.json`` and ``gpu-check.md`` (each atomically) into ``folder``."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("gpu-check.json", json.dumps(state, indent=2)), ("gpu-check.md", render_markdown(state))):
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, folder / name)


# ---- tests -----------------------------------------------------------------------------------------
def summarize_tests(lines: Iterable[str]) -> dict:
    """Counts of the JSON lines that ``gpu_check_pytest`` wrote (see that module for the format).

    Each test's outcome: ``failed`` (its call failed), ``errors`` (setup/teardown failed, or a file
    failed to collect), ``skipped``, ``xfailed``, ``xpassed``, ``passed``, or ``unfinished`` (it
    started but the run was stopped before its outcome). Returns totals, counts per test file,
    the failures with one-line messages, skip reasons and the slowest tests.
    """
    tests: dict[str, dict] = {}
    collect_errors: list[dict] = []
    exitstatus = None
    for line in lines:
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        kind = ev.get("event")
        if kind == "start":
            tests.setdefault(ev["nodeid"], {"outcome": None, "message": "", "duration": 0.0})
        elif kind == "report":
            t = tests.setdefault(ev["nodeid"], {"outcome": None, "message": "", "duration": 0.0})
            t["duration"] += float(ev.get("duration", 0.0))
            when, outcome = ev.get("when"), ev.get("outcome")
            if outcome == "failed":
                if t["outcome"] not in ("failed", "errors"):
                    t["outcome"] = "failed" if when == "call" else "errors"
                    t["message"] = ev.get("message", "")
            elif outcome == "skipped":
                if t["outcome"] not in ("failed", "errors"):
                    t["outcome"] = "xfailed" if ev.get("wasxfail") else "skipped"
                    t["message"] = ev.get("message", "")
            elif outcome == "passed" and when == "call" and t["outcome"] is None:
                t["outcome"] = "xpassed" if ev.get("wasxfail") else "passed"
        elif kind == "collect_error":
            collect_errors.append({"nodeid": ev.get("nodeid", "?"), "outcome": "errors",
                                   "message": ev.get("message", "")})
        elif kind == "finish":
            exitstatus = ev.get("exitstatus")
    counts = dict.fromkeys(OUTCOMES, 0)
    by_file: dict[str, dict] = {}
    failures, skips = [], collections.Counter()
    for nodeid, t in tests.items():
        outcome = t["outcome"] or "unfinished"
        counts[outcome] += 1
        f = by_file.setdefault(nodeid.split("::")[0], dict.fromkeys(OUTCOMES, 0))
        f[outcome] += 1
        if outcome in ("failed", "errors", "unfinished", "xpassed"):
            failures.append({"nodeid": nodeid, "outcome": outcome, "message": t["message"]})
        elif outcome == "skipped":
            skips[t["message"]] += 1
    for err in collect_errors:
        counts["errors"] += 1
        by_file.setdefault(err["nodeid"].split("::")[0], dict.fromkeys(OUTCOMES, 0))["errors"] += 1
        failures.append(err)
    slowest = sorted(tests.items(), key=lambda kv: -kv[1]["duration"])[:10]
    return {**counts, "total": sum(counts.values()), "exitstatus": exitstatus, "by_file": by_file,
            "failures": failures, "skip_reasons": [[r, n] for r, n in skips.most_common(8)],
            "seconds": round(sum(t["duration"] for t in tests.values()), 1),
            "slowest": [{"nodeid": n, "seconds": round(t["duration"], 2)} for n, t in slowest]}


# ---- benchmarks ------------------------------------------------------------------------------------
def bench_rows(records: list[dict]) -> list[dict]:
    """One row per (suite, case, compared impl): csdkit's median and peak memory against the other.

    ``ratio`` = other median / csdkit median (above 1: csdkit is faster). Third-party baselines
    come first, then the suite's own baseline, then the other impls. A case with no other impl gets
    one row with ``baseline`` None; a case whose csdkit run failed shows its error.
    """
    groups: dict[tuple[str, str], dict[str, dict]] = {}
    for r in records:
        groups.setdefault((r.get("suite", "?"), r.get("case", "?")), {})[r.get("impl", "?")] = r
    rows = []
    for (suite, case), impls in groups.items():
        mine = impls.get("csdkit")
        others = sorted((r for i, r in impls.items() if i != "csdkit"),
                        key=lambda r: (r.get("impl") not in THIRD_PARTY, not r.get("baseline"), r.get("impl")))
        for other in others or [None]:
            row = {"suite": suite, "case": case, "n": (mine or other or {}).get("n"),
                   "csdkit_ms": None, "peak_mb": None, "baseline": None, "baseline_ms": None, "ratio": None,
                   "error": None}
            if mine is not None:
                row["csdkit_ms"], row["peak_mb"], row["error"] = mine.get("median_ms"), mine.get("peak_mem_mb"), \
                    mine.get("error")
            if other is not None:
                row["baseline"] = other.get("impl")
                row["baseline_ms"] = other.get("median_ms")
                if other.get("error"):
                    row["error"] = (row["error"] + "; " if row["error"] else "") + f"{other['impl']}: {other['error']}"
            if row["csdkit_ms"] and row["baseline_ms"]:
                row["ratio"] = row["baseline_ms"] / row["csdkit_ms"]
            rows.append(row)
    return rows


# ---- verdict and Markdown --------------------------------------------------------------------------
def verdict(state: dict) -> tuple[bool, str]:
    """(passed, one-line reason): every phase ok, and no test failed or errored."""
    bad = [p for p in state.get("phases", []) if p["status"] not in ("ok",) and
           not (p["status"] == "skipped" and p["name"] == "build" and "--skip-build" in p.get("note", ""))]
    t = state.get("tests") or {}
    if bad:
        return False, ", ".join(f"{p['name']} {p['status']}" for p in bad)
    if not state.get("phases"):
        return False, "nothing ran"
    if t and (t.get("failed") or t.get("errors")):
        return False, f"{t['failed']} tests failed, {t['errors']} errors"
    return True, "every phase passed" + (f" ({t['passed']} CUDA tests passed)" if t else "")


def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _env_lines(state: dict) -> list[str]:
    env = state.get("env", {})
    gpus = env.get("gpus") or []
    if gpus:
        names = collections.Counter(g["name"] for g in gpus)
        g = gpus[0]
        gpu = ", ".join(f"{n} x{k}" if k > 1 else n for n, k in names.items()) + \
            f" (compute capability {g.get('compute_cap')}, {g.get('memory')}, driver {g.get('driver')}" + \
            (f", CUDA <= {env['driver_cuda']})" if env.get("driver_cuda") else ")")
    else:
        gpu = env.get("device_name") or "-"
    build = env.get("csdkit_build") or {}
    lines = ["| | |", "| --- | --- |", f"| GPU | {_cell(gpu)} |"]
    if env.get("torch"):
        lines.append(f"| torch | {env['torch']} (CUDA {env.get('torch_cuda')}), {_cell(env.get('python'))} "
                     f"(Python {env.get('python_version')}) |")
    if env.get("python_h") is False:
        lines.append(f"| Python headers | **missing**: no Python.h in {_cell(env.get('python_include'))} |")
    if env.get("torch_choice"):
        lines.append(f"| torch chosen | {_cell(env['torch_choice'])} |")
    for note in env.get("setup_notes") or []:
        lines.append(f"| setup | {_cell(note)} |")
    tools = ", ".join(f"{k} {env[k]}" for k in ("nvcc", "cmake", "ninja") if env.get(k))
    if tools:
        lines.append(f"| tools | {tools} |")
    if build:
        archs = ",".join(build.get("cuda_architectures") or [])
        lines.append(f"| csdkit build | {build.get('version')}, CUDA kernels "
                     f"{'for ' + archs if build.get('cuda_compiled') else 'NOT compiled'}"
                     f", has_cuda() {build.get('has_cuda')}"
                     + (f", tree {env['build_dir']}" if env.get("build_dir") else "") + " |")
    if env.get("baselines"):
        found = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in env["baselines"].items())
        lines.append(f"| baselines importable | {found} |")
    lines.append(f"| time | {state.get('elapsed_s', 0):.0f} s of a {state.get('budget_s', 0):.0f} s budget; "
                 f"started {state.get('started')}, updated {state.get('updated')}"
                 f"{'' if state.get('finished') else ' (still running or stopped)'} |")
    return lines


def _test_lines(t: dict) -> list[str]:
    lines = [f"## Tests: `{t.get('command', 'pytest -m cuda')}`", "",
             f"**{t['passed']} passed, {t['failed']} failed, {t['errors']} errors, {t['skipped']} skipped**"
             + (f", {t['xfailed']} xfailed" if t.get("xfailed") else "")
             + (f", {t['xpassed']} xpassed" if t.get("xpassed") else "")
             + (f", {t['unfinished']} unfinished (stopped)" if t.get("unfinished") else "")
             + f" of {t['total']}, {t.get('seconds', 0):.0f} s in tests", "",
             "| test file | what it checks | passed | failed | errors | skipped |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for path in sorted(t.get("by_file", {})):
        c = t["by_file"][path]
        name = path.rsplit("/", 1)[-1]
        lines.append(f"| {_cell(path)} | {LABELS.get(name, '')} | {c['passed'] + c.get('xpassed', 0)} | "
                     f"{c['failed'] + c.get('unfinished', 0)} | {c['errors']} | {c['skipped'] + c.get('xfailed', 0)} |")
    missing = [f for f in KERNELS if not any(p.endswith("/" + f) or p == f for p in t.get("by_file", {}))]
    if missing:
        lines += ["", "No test ran from: " + ", ".join(f"`{m}` ({KERNELS[m]})" for m in missing)]
    fails = t.get("failures") or []
    if fails:
        lines += ["", f"Failures ({len(fails)}; first {min(len(fails), MAX_FAILURES_SHOWN)}):", ""]
        lines += [f"- `{f['nodeid']}` {f['outcome']}: {_cell(f['message'])[:240]}" for f in fails[:MAX_FAILURES_SHOWN]]
    if t.get("skip_reasons"):
        lines += ["", "Skipped, by reason:", ""]
        lines += [f"- {n} x {_cell(reason)[:200] or '(no reason)'}" for reason, n in t["skip_reasons"]]
    slow = [s for s in t.get("slowest") or [] if s["seconds"] >= 0.5][:5]
    if slow:
        lines += ["", "Slowest: " + ", ".join(f"`{s['nodeid']}` {s['seconds']:.1f} s" for s in slow)]
    return lines


def _bench_lines(records: list[dict]) -> list[str]:
    device = next((r["device"] for r in records if r.get("device")), "cuda")
    lines = [f"## Benchmarks: `benchmarks/run.py SUITE --device {device} --quick`", "",
             "| suite | case | n | csdkit ms | csdkit peak MB | baseline | baseline ms | ratio |",
             "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    per_step = []
    for r in bench_rows(records):
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] else "-"
        peak = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else "-"
        lines.append(f"| {r['suite']} | {_cell(r['case'])} | {r['n'] if r['n'] is not None else '-'} | "
                     f"{_ms(r['csdkit_ms'])} | {peak} | {r['baseline'] or '-'} | {_ms(r['baseline_ms'])} | {ratio} |"
                     + (f" **error**: {_cell(r['error'])[:160]}" if r["error"] else ""))
        if r["suite"] == "texture" and r["case"] == "step" and r["csdkit_ms"] and r["baseline"] in (None, "reference"):
            per_step.append(r["csdkit_ms"] / 1e3)
    peak = "torch.cuda.max_memory_allocated during them (weights included)" if device == "cuda" else \
        "the process's peak resident set (CPU)"
    lines += ["", "ratio = baseline ms / csdkit ms: above 1, csdkit is faster. Medians of the timed calls "
              f"(--quick: at most 3 after 1 warm-up); peak MB = {peak}."]
    if per_step:
        what = "sd21-base fp16, 1 view of 512x512, 1024 texture" if device == "cuda" else "MiniPrior, CPU"
        lines.append(f"Texturing ({what}): **{per_step[0]:.3f} s per step**.")
    return lines


def render_markdown(state: dict) -> str:
    ok, why = verdict(state)
    lines = ["# csdkit GPU check", "", f"**{'PASS' if ok else 'FAIL'}**: {_cell(why)}", ""]
    lines += _env_lines(state)
    lines += ["", "## Phases", "", "| phase | status | seconds | limit s | note |", "| --- | --- | ---: | ---: | --- |"]
    for p in state.get("phases", []):
        lines.append(f"| {p['name']} | {p['status']} | {p.get('seconds', 0):.1f} | {p.get('limit_s', '-')} | "
                     f"{_cell(p.get('note', ''))} |")
    if state.get("tests"):
        lines += [""] + _test_lines(state["tests"])
    if state.get("benchmarks"):
        lines += [""] + _bench_lines(state["benchmarks"])
    return "\n".join(lines)
