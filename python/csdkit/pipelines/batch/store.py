"""The status store of a batch: SQLite in ``OUT/batch.sqlite`` (WAL), one row per item.

Only the batch process writes it (workers report back to it), and every state change is one
transaction, so a kill at any moment leaves a consistent table: an item is ``pending``, ``running``,
``done`` or ``failed``. A second batch on the same folder is refused while the first holds
``OUT/.batch.lock`` (an ``flock``, released by the kernel when its holder dies, so rows found
``running`` by the next batch belong to a killed one and are resumed).

``OUT/summary.json`` is rewritten atomically after every finished item and at the end.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from ...training.checkpoint import atomic_write_bytes

STATUSES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id        TEXT PRIMARY KEY,
    line      INTEGER NOT NULL,
    job       TEXT NOT NULL,
    spec      TEXT NOT NULL,
    status    TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts  INTEGER NOT NULL DEFAULT 0,
    error     TEXT,
    run_dir   TEXT NOT NULL,
    outputs   TEXT NOT NULL DEFAULT '{}',
    seconds   REAL,
    started   REAL,
    finished  REAL,
    worker    TEXT,
    info      TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS events (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    time  REAL NOT NULL,
    id    TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT
);
"""


class BatchLocked(ValueError):
    """Another live batch process holds this output folder."""


class Store:
    """The item table of one output folder (see the module docstring). Use as a context manager."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.out_dir / ".batch.lock", "a+")  # noqa: SIM115 - held for the store's life
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise BatchLocked(f"another csdkit batch is running on {self.out_dir} (it holds .batch.lock)") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"{os.getpid()}\n")
        self._lock.flush()
        self.db = sqlite3.connect(self.out_dir / "batch.sqlite", isolation_level=None, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    # ---- context manager ----------------------------------------------------------------------------
    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        if not self._lock.closed:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- transactions -------------------------------------------------------------------------------
    def _tx(self, sql: str, args: tuple, event: tuple[str, str, str | None] | None = None) -> None:
        with self.db:  # one transaction: the change and its event row commit together
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(sql, args)
            if event is not None:
                self.db.execute("INSERT INTO events (time, id, event, detail) VALUES (?, ?, ?, ?)",
                                (time.time(), *event))

    def add(self, item_id: str, line: int, job: str, spec: dict, run_dir: str) -> None:
        """Insert a new item as ``pending`` (its ``line`` is refreshed if the row exists)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute("UPDATE items SET line = ? WHERE id = ?", (line, item_id))
            if cur.rowcount == 0:
                self.db.execute("INSERT INTO items (id, line, job, spec, status, run_dir) VALUES (?, ?, ?, ?, ?, ?)",
                                (item_id, line, job, json.dumps(spec, sort_keys=True), "pending", run_dir))

    def get(self, item_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        return _row(row) if row is not None else None

    def all(self) -> list[dict[str, Any]]:
        return [_row(r) for r in self.db.execute("SELECT * FROM items ORDER BY line")]

    def claim(self, item_id: str, worker: str) -> int:
        """``pending``/``failed`` -> ``running``; returns the attempt number (1 for the first)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT status, attempts FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None or row["status"] in ("running", "done"):
                raise RuntimeError(f"batch store: item {item_id!r} cannot start from status "
                                   f"{row['status'] if row else 'missing'}")
            attempt = int(row["attempts"]) + 1
            self.db.execute("UPDATE items SET status = 'running', attempts = ?, error = NULL, started = ?, "
                            "finished = NULL, worker = ? WHERE id = ?", (attempt, time.time(), worker, item_id))
            self.db.execute("INSERT INTO events (time, id, event, detail) VALUES (?, ?, 'start', ?)",
                            (time.time(), item_id, f"attempt {attempt} on {worker}"))
        return attempt

    def set_worker(self, item_id: str, worker: str) -> None:
        self._tx("UPDATE items SET worker = ? WHERE id = ?", (worker, item_id))

    def finish(self, item_id: str, status: str, *, error: str | None = None, outputs: dict | None = None,
               seconds: float | None = None, info: dict | None = None) -> None:
        """``running`` -> ``done`` / ``failed`` / ``pending`` (an interrupted item, resumed next time)."""
        if status not in ("done", "failed", "pending"):
            raise ValueError(f"finish(): status must be done, failed or pending, got {status!r}")
        self._tx("UPDATE items SET status = ?, error = ?, outputs = ?, seconds = ?, finished = ?, info = ? "
                 "WHERE id = ? AND status = 'running'",
                 (status, error, json.dumps(outputs or {}), seconds, time.time(), json.dumps(info or {}), item_id),
                 (item_id, status, error))

    def recover_running(self) -> list[str]:
        """Rows left ``running`` by a killed batch -> ``pending`` (they are resumed); returns their ids."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            ids = [r["id"] for r in self.db.execute("SELECT id FROM items WHERE status = 'running'")]
            for i in ids:
                self.db.execute("UPDATE items SET status = 'pending', error = 'interrupted (resumed)' WHERE id = ?",
                                (i,))
                self.db.execute("INSERT INTO events (time, id, event, detail) VALUES (?, ?, 'recovered', ?)",
                                (time.time(), i, "left running by a killed batch"))
        return ids

    def events(self, item_id: str | None = None) -> list[dict[str, Any]]:
        q, a = ("SELECT * FROM events WHERE id = ? ORDER BY seq", (item_id,)) if item_id else \
            ("SELECT * FROM events ORDER BY seq", ())
        return [dict(r) for r in self.db.execute(q, a)]

    # ---- summary ------------------------------------------------------------------------------------
    def write_summary(self, ids: list[str] | None = None, extra: dict | None = None,
                      counts_extra: dict[str, int] | None = None) -> dict[str, Any]:
        """Write ``OUT/summary.json`` atomically (the items of ``ids``, default all) and return it."""
        rows = self.all()
        if ids is not None:
            keep = set(ids)
            rows = [r for r in rows if r["id"] in keep]
        items = [{"id": r["id"], "status": r["status"], "attempts": r["attempts"], "error": r["error"],
                  "run_dir": r["run_dir"], "outputs": r["outputs"], "seconds": r["seconds"], "job": r["job"],
                  "line": r["line"]} for r in rows]
        counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
        counts.update(counts_extra or {})
        summary = {"items": items, "counts": counts, **(extra or {})}
        atomic_write_bytes(self.out_dir / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
        return summary


def _row(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["spec"] = json.loads(d["spec"])
    d["outputs"] = json.loads(d["outputs"] or "{}")
    d["info"] = json.loads(d["info"] or "{}")
    return d
