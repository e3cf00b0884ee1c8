"""csdkit benchmark runner: times csdkit kernels against baselines in the same run.

Usage::

    python benchmarks/run.py SUITE [SUITE ...] [--quick] [--device cpu|cuda] [--json FILE]
                             [--only CASE/IMPL ...] [--keep-going]
    python benchmarks/run.py --list

A suite is a module ``benchmarks/suites/<name>.py`` with a function
``cases(device: str, quick: bool) -> list[Case]``. Each case names the ``impl`` it times
(``csdkit``, ``reference`` or a third-party baseline such as ``tinycudann``) and the records are
``{suite, case, impl, device, n, median_ms, min_ms, max_ms, peak_mem_mb}``. The table shows each
impl's speed relative to the baseline of the same case timed in the same run (ratios survive a
noisy machine). Benchmarks are not tests: no test asserts on time.

``--json`` is rewritten after every case, so a run stopped part-way (a timeout) keeps what it
measured. ``--only`` keeps the cases whose ``case/impl`` matches one of the shell-style patterns
(``'step/csdkit'``, ``'*/csdkit'``); ``--keep-going`` records a case that raises as
``{suite, case, impl, device, error}``, goes on with the next one and exits 1 at the end.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import os
import pathlib
import sys
import traceback

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Case, run_case  # noqa: E402


def list_suites() -> list[str]:
    return sorted(p.stem for p in (HERE / "suites").glob("*.py") if not p.stem.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suites", nargs="*", help="suite names (see --list)")
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", type=pathlib.Path, help="write the records to this file")
    ap.add_argument("--list", action="store_true", help="list the suites and exit")
    ap.add_argument("--only", nargs="+", metavar="CASE/IMPL",
                    help="run only the cases whose 'case/impl' matches one of these shell-style patterns")
    ap.add_argument("--keep-going", action="store_true",
                    help="record a failing case as an error and go on (exit status 1 at the end)")
    args = ap.parse_args(argv)
    if args.list or not args.suites:
        print("suites:", " ".join(list_suites()))
        return 0
    unknown = [s for s in args.suites if s not in list_suites()]
    if unknown:
        ap.error(f"unknown suite(s) {unknown}; available: {list_suites()}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            ap.error("--device cuda: no CUDA device is available")

    records: list[dict] = []
    if args.json:
        _write_json(args.json, records)
    errors = 0
    for suite in args.suites:
        mod = importlib.import_module(f"suites.{suite}")
        cases: list[Case] = mod.cases(args.device, args.quick)
        for case in cases:
            if args.only and not any(fnmatch.fnmatchcase(f"{case.name}/{case.impl}", p) for p in args.only):
                continue
            try:
                rec = run_case(suite, case, args.device, args.quick)
            except Exception as exc:  # noqa: BLE001 - --keep-going records any failure of a case
                if not args.keep_going:
                    raise
                traceback.print_exc()
                errors += 1
                rec = {"suite": suite, "case": case.name, "impl": case.impl, "device": args.device,
                       "error": f"{type(exc).__name__}: {exc}"}
                print(f"  {suite}/{case.name} [{case.impl}] FAILED: {rec['error']}", file=sys.stderr)
            else:
                print(f"  {suite}/{case.name} [{case.impl}] {rec['median_ms']:.2f} ms", file=sys.stderr)
            records.append(rec)
            if args.json:
                _write_json(args.json, records)
    print_table(records)
    if args.json:
        print(f"wrote {len(records)} records to {args.json}")
    return 1 if errors else 0


def _write_json(path: pathlib.Path, records: list[dict]) -> None:
    """Writes the records so far (atomically: a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(records, indent=2))
    os.replace(tmp, path)


def print_table(records: list[dict]) -> None:
    """One row per record; ``vs baseline`` = baseline median / this median (higher is faster)."""
    baselines = {}
    failed = [r for r in records if "error" in r]
    records = [r for r in records if "error" not in r]
    for r in records:
        if r.get("baseline"):
            baselines[(r["suite"], r["case"])] = r["median_ms"]
    header = f"{'suite':<10} {'case':<28} {'impl':<12} {'device':<6} {'n':>9} {'median ms':>11} " \
             f"{'min ms':>9} {'peak MB':>9} {'vs baseline':>12}"
    print(header)
    print("-" * len(header))
    for r in records:
        base = baselines.get((r["suite"], r["case"]))
        ratio = f"{base / r['median_ms']:.2f}x" if base and r["median_ms"] > 0 else "-"
        print(f"{r['suite']:<10} {r['case']:<28} {r['impl']:<12} {r['device']:<6} {r['n']:>9} "
              f"{r['median_ms']:>11.2f} {r['min_ms']:>9.2f} {r['peak_mem_mb']:>9.1f} {ratio:>12}")
    for r in failed:
        print(f"{r['suite']:<10} {r['case']:<28} {r['impl']:<12} {r['device']:<6} FAILED: {r['error']}")


if __name__ == "__main__":
    raise SystemExit(main())
