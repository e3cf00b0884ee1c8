"""``batch()``: run a manifest of jobs into one output folder, resumably.

Layout of ``out_dir``::

    batch.sqlite (+ -wal, -shm)   the status store (:mod:`.store`), one row per item
    summary.json                  items (id, status, attempts, error, run_dir, outputs, seconds) + counts
    index.html                    the offline gallery (:mod:`.gallery`)
    items/<id>/                   each item's run directory (the job's usual contents)
    logs/<id>.log                 each item's worker output (all attempts), plus its request / result files
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .gallery import write_gallery
from .local import run_local
from .manifest import Item, ManifestError, load_manifest
from .ray_engine import run_ray
from .store import Store
from .worker import read_outcome

ENGINES = ("local", "ray")


@dataclasses.dataclass
class BatchResult:
    """What :func:`batch` returns.

    Attributes:
        out_dir: the batch folder.
        items: the summary's items (dicts: id, status, attempts, error, run_dir, outputs, seconds, job, line).
        counts: ``done`` / ``failed`` / ``pending`` / ``running`` over the manifest's items, ``skipped``
            (done before this run, not touched), ``ran`` (attempts started by this run).
        failed: ids of the failed items; skipped: ids of the items skipped as done.
        interrupted: True when Ctrl-C / SIGTERM stopped the batch (the rest resumes on the next run).
        seconds: wall time of this run; seconds_per_item: mean wall time of the attempts it ran.
        summary, gallery: ``summary.json`` and ``index.html``.
    """

    out_dir: Path
    items: list[dict[str, Any]]
    counts: dict[str, int]
    failed: list[str]
    skipped: list[str]
    interrupted: bool
    seconds: float
    seconds_per_item: float | None
    summary: Path
    gallery: Path

    @property
    def exit_code(self) -> int:
        """The CLI's exit code: 130 interrupted, 1 some item failed (or left pending), else 0."""
        if self.interrupted:
            return 130
        return 0 if self.counts["done"] == len(self.items) else 1


def _check_args(engine, workers, timeout, max_attempts, ray_address, threads) -> None:
    if engine not in ENGINES:
        raise ValueError(f"batch(): engine must be one of {ENGINES}, got {engine!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"batch(): workers must be an int >= 1 (or None), got {workers!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"batch(): threads must be an int >= 1 (or None), got {threads!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"batch(): timeout must be seconds > 0 (or None), got {timeout!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"batch(): max_attempts must be an int >= 1, got {max_attempts!r}")
    if ray_address is not None and engine != "ray":
        raise ValueError(f"batch(): ray_address={ray_address!r} needs engine='ray', got engine={engine!r}")


def _norm(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True))


class _SigtermAsInterrupt:
    """While active, SIGTERM raises KeyboardInterrupt in the main thread (same clean stop as Ctrl-C)."""

    def __enter__(self):
        self.previous = None
        if sys.platform != "win32":
            try:
                self.previous = signal.signal(signal.SIGTERM, self._raise)
            except ValueError:  # not the main thread
                self.previous = None
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def batch(manifest: str | os.PathLike | Iterable[Mapping[str, Any]], out_dir: str | os.PathLike, *,
          engine: str = "local", workers: int | None = None, timeout: float | None = None,
          retry_failed: bool = False, max_attempts: int = 3, ray_address: str | None = None,
          threads: int | None = None, progress: bool = True, quiet: bool = False) -> BatchResult:
    """Run every item of ``manifest`` into ``out_dir``; safe to call again on the same folder.

    Items already done are skipped (their outputs are not touched); items interrupted (Ctrl-C, or left
    ``running`` by a killed batch) resume from their run directory's checkpoints; failed items run again
    only with ``retry_failed=True``, while they have had fewer than ``max_attempts`` attempts. Each
    attempt runs in its own worker process, so an item that raises, segfaults, exits, runs out of memory
    or passes ``timeout`` seconds is marked failed with the reason, and the batch goes on.

    Args:
        manifest: a ``.jsonl`` / ``.csv`` file (see :mod:`csdkit.pipelines.batch.manifest`) or a list of
            dicts with the same fields.
        out_dir: the batch folder (layout in :mod:`csdkit.pipelines.batch.runner`).
        engine: ``"local"`` (worker processes on this machine) or ``"ray"`` (Ray tasks; needs ``ray``).
        workers: items at once (local: default one per GPU, else min(cores, 4) CPU items, the cores split
            between them; ray: default what the cluster holds).
        timeout: seconds an attempt may run (None: no limit).
        retry_failed, max_attempts: retry policy for failed items.
        ray_address: the Ray cluster to join (default: start a local Ray instance).
        threads: CPU threads of each item (torch, OpenMP and csdkit kernels; default: the cores split
            between the items that run at once).
        progress: a progress bar over items; quiet: no end summary on stdout.

    Returns:
        :class:`BatchResult` (``exit_code`` is what ``csdkit batch`` exits with).

    Raises:
        ManifestError: a malformed manifest (every error with its line), before anything runs.
        ValueError: bad arguments, another batch running on ``out_dir``, Ray missing.
    """
    _check_args(engine, workers, timeout, max_attempts, ray_address, threads)
    t_start = time.perf_counter()
    items = load_manifest(manifest)
    out = Path(out_dir).resolve()
    with Store(out) as store:
        errors = []
        for it in items:
            row = store.get(it.id)
            if row is not None and _norm(row["spec"]) != _norm(it.spec()):
                errors.append(f"line {it.line}: item {it.id!r} already ran in {out} with other inputs "
                              f"({row['spec']['fields']}); give it a new id or use another --out")
        if errors:
            raise ManifestError(errors)
        for it in items:
            store.add(it.id, it.line, it.job, it.spec(), str(out / "items" / it.id))
        by_id = {it.id: it for it in items}
        _recover(store, out)
        rows = {r["id"]: r for r in store.all()}
        skipped = [it.id for it in items if rows[it.id]["status"] == "done"]
        todo = [it for it in items if rows[it.id]["status"] == "pending" or (
            rows[it.id]["status"] == "failed" and retry_failed and rows[it.id]["attempts"] < max_attempts)]
        ids = [it.id for it in items]
        state = _Progress(store, out, ids, total=len(items), initial=len(skipped), progress=progress)
        interrupted = False
        info: dict[str, Any] = {}
        todo = [it for it in todo if not _missing_input(it, state)]
        try:
            with _SigtermAsInterrupt():
                if todo:
                    if engine == "local":
                        run_local(todo, workers=workers, timeout=timeout, threads=threads, start=state.start,
                                  finish=state.finish)
                    else:
                        info = run_ray(todo, workers=workers, timeout=timeout, address=ray_address, threads=threads,
                                       start=state.start, finish=state.finish)
        except KeyboardInterrupt:
            interrupted = True
            _recover(store, out)  # an item claimed just before the interrupt, its worker never started
        finally:
            state.close()
        seconds = time.perf_counter() - t_start
        per_item = sum(state.walls) / len(state.walls) if state.walls else None
        summary = store.write_summary(ids, extra={
            "engine": engine, "cluster": info or None, "interrupted": interrupted, "seconds": round(seconds, 3),
            "seconds_per_item": round(per_item, 3) if per_item is not None else None,
            "skipped": skipped}, counts_extra={"skipped": len(skipped), "ran": len(state.walls)})
        gallery = write_gallery(out, [r for r in store.all() if r["id"] in by_id])
    failed = [i["id"] for i in summary["items"] if i["status"] == "failed"]
    result = BatchResult(out, summary["items"], summary["counts"], failed, skipped, interrupted, seconds,
                         per_item, out / "summary.json", gallery)
    if not quiet:
        _print_summary(result, retry_failed, max_attempts)
    return result


def _request(it: Item, out: Path, attempt: int) -> dict[str, Any]:
    return {"id": it.id, "job": it.job, "kwargs": it.kwargs(), "run_dir": str(out / "items" / it.id),
            "out_root": str(out), "result": str(out / "logs" / f"{it.id}.result.json"),
            "log": str(out / "logs" / f"{it.id}.log"), "attempt": attempt, "test_crash": it.test_crash}


def _missing_input(it: Item, state: _Progress) -> bool:
    """An item whose mesh file does not exist fails at once, without a worker (the worker checks again)."""
    mesh = it.kwargs().get("mesh")
    if not isinstance(mesh, str) or mesh.startswith("@") or Path(mesh).is_file():
        return False
    state.start(it, {"name": "batch"})
    state.finish(it, {"status": "failed", "error": f"FileNotFoundError: mesh file not found: {mesh}",
                      "outputs": {}, "seconds": 0.0, "info": {}})
    return True


def _recover(store: Store, out: Path) -> None:
    """Rows left ``running`` (by a killed batch, or one stopped between claiming an item and starting its
    worker): ``done`` / ``failed`` as their worker recorded it when it finished before the batch died,
    else back to ``pending`` (they resume from their checkpoints)."""
    for row in store.all():
        if row["status"] != "running":
            continue
        req = {"result": str(out / "logs" / f"{row['id']}.result.json"), "attempt": row["attempts"],
               "log": str(out / "logs" / f"{row['id']}.log")}
        outcome = read_outcome(req, None)
        if "attempt" in outcome and outcome["status"] in ("done", "failed"):  # the worker's own result file
            store.finish(row["id"], outcome["status"], error=outcome.get("error"), outputs=outcome["outputs"],
                         seconds=outcome["seconds"], info={**outcome.get("info", {}), "recovered": True})
    store.recover_running()


class _Progress:
    """The engines' ``start`` / ``finish`` callbacks: store transactions, summary, gallery, progress bar."""

    def __init__(self, store: Store, out: Path, ids: list[str], *, total: int, initial: int, progress: bool):
        self.store, self.out, self.ids = store, out, ids
        self.t0: dict[str, float] = {}
        self.walls: list[float] = []
        self.items: dict[str, Item] = {}
        self.bar = tqdm(total=total, initial=initial, desc="csdkit batch", unit="item", disable=not progress,
                        dynamic_ncols=True)
        self.done = self.failed = 0

    def start(self, it: Item, slot: dict[str, Any]) -> dict[str, Any]:
        attempt = self.store.claim(it.id, slot["name"])
        self.t0[it.id] = time.perf_counter()
        self.items[it.id] = it
        return _request(it, self.out, attempt)

    def finish(self, it: Item, outcome: dict[str, Any]) -> None:
        wall = time.perf_counter() - self.t0.pop(it.id, time.perf_counter())
        status = {"done": "done", "failed": "failed"}.get(outcome["status"], "pending")
        info = {**(outcome.get("info") or {}), "job_seconds": outcome.get("seconds")}
        self.store.finish(it.id, status, error=outcome.get("error"), outputs=outcome.get("outputs"),
                          seconds=round(wall, 3), info=info)
        if status == "pending":
            return
        self.walls.append(wall)
        self.done += status == "done"
        self.failed += status == "failed"
        self.bar.update(1)
        self.bar.set_postfix(done=self.done, failed=self.failed, refresh=False)
        self.store.write_summary(self.ids)
        write_gallery(self.out, [r for r in self.store.all() if r["id"] in set(self.ids)])

    def close(self) -> None:
        self.bar.close()


def _print_summary(r: BatchResult, retry_failed: bool, max_attempts: int) -> None:
    c = r.counts
    per = f", {r.seconds_per_item:.1f} s per item" if r.seconds_per_item is not None else ""
    print(f"csdkit batch: {c['done']} done, {c['failed']} failed, {c['skipped']} skipped (done before), "
          f"{c['pending'] + c['running']} pending; ran {c['ran']} in {r.seconds:.1f} s{per}")
    for i in r.items:
        if i["status"] == "failed":
            note = "" if retry_failed and i["attempts"] < max_attempts else \
                (" [not retried: pass --retry-failed]" if not retry_failed else
                 f" [{i['attempts']} attempts = --max-attempts]")
            print(f"  failed  {i['id']} (line {i['line']}): {i['error']}{note}")
    if r.interrupted:
        print(f"csdkit batch: interrupted; run the same command again to resume ({r.out_dir})")
    print(f"  summary {r.summary}\n  gallery {r.gallery}")
