"""Batch jobs over mesh libraries: ``csdkit batch MANIFEST --out DIR`` / :func:`batch`.

Modules: :mod:`.manifest` (JSONL / CSV parsing and validation, stable ids), :mod:`.jobs` (the job table:
name -> job function, looked up at run time), :mod:`.store` (the SQLite status store and summary.json),
:mod:`.worker` (one isolated process per item attempt), :mod:`.local` and :mod:`.ray_engine` (the
engines), :mod:`.gallery` (``index.html``) and :mod:`.runner` (:func:`batch`). See ``docs/batch.md``.
"""

from .jobs import JOB_TABLE, available_jobs, get_job, register_job
from .manifest import Item, ManifestError, load_manifest, stable_id
from .runner import BatchResult, batch
from .store import BatchLocked, Store

__all__ = ["JOB_TABLE", "BatchLocked", "BatchResult", "Item", "ManifestError", "Store", "available_jobs", "batch",
           "get_job", "load_manifest", "register_job", "stable_id"]
