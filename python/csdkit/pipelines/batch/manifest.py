"""Reading a batch manifest: JSONL or CSV -> validated :class:`Item` s, every error with its line number.

JSONL: one JSON object per line (blank lines and lines starting with ``#`` are skipped). CSV: a header
row, then one item per row; a cell is read as JSON when it parses (``8`` -> int, ``0.5`` -> float,
``true``, ``null``, ``["glb"]``) and as a string otherwise; an empty cell leaves the field unset.

Fields: the job's required inputs (``mesh``, ``prompt`` for ``texture``), optional ``id`` (else a stable
hash of the item's inputs), optional ``job`` (default ``texture``) and any of the job's options. A
relative ``mesh`` path is taken relative to the manifest's folder.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .jobs import TEST_CRASH_MODES, TEST_HOOKS, get_job

DEFAULT_JOB = "texture"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PATH_FIELDS = ("mesh",)


class ManifestError(ValueError):
    """A manifest that cannot run; ``errors`` lists ``"FILE:LINE: message"`` strings (all of them)."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        message = errors[0]
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more: " + "; ".join(errors[1:4]) + \
                (" ..." if len(errors) > 4 else "") + ")"
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class Item:
    """One manifest item.

    Attributes:
        id: the item's id (its run directory is ``OUT/items/<id>``).
        job: job name (see :mod:`csdkit.pipelines.batch.jobs`).
        line: line number in the manifest (1-based; the header is line 1 of a CSV).
        fields: the item's fields as written (without ``id`` and ``job``; aliases resolved), JSON values.
        base_dir: folder that relative paths are resolved against.
    """

    id: str
    job: str
    line: int
    fields: dict[str, Any]
    base_dir: str

    def kwargs(self) -> dict[str, Any]:
        """The job's keyword arguments: fields with relative paths resolved, test hooks removed."""
        out = {k: v for k, v in self.fields.items() if k not in TEST_HOOKS}
        for k in _PATH_FIELDS:
            v = out.get(k)
            if isinstance(v, str) and not v.startswith("@") and not os.path.isabs(v):
                out[k] = os.path.normpath(os.path.join(self.base_dir, v))
        return out

    @property
    def test_crash(self) -> str | None:
        return self.fields.get("_test_crash")

    def spec(self) -> dict[str, Any]:
        """What identifies the item's work (stored with its row; a changed spec under a kept id is an error)."""
        return {"job": self.job, "fields": self.fields}


def stable_id(job: str, fields: Mapping[str, Any]) -> str:
    """A readable id that depends only on the job and the fields as written: ``<slug>-<12 hex of sha256>``."""
    canon = json.dumps({"job": job, "fields": fields}, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(canon.encode()).hexdigest()[:12]
    words = []
    mesh = fields.get("mesh")
    if isinstance(mesh, str):
        words.append(Path(mesh.lstrip("@")).stem)
    prompt = fields.get("prompt")
    if isinstance(prompt, str):
        words.append(prompt)
    slug = re.sub(r"[^a-z0-9]+", "-", " ".join(words).lower()).strip("-")[:40].strip("-")
    return f"{slug}-{digest}" if slug else digest


def _parse_jsonl(text: str, name: str) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    rows, errors = [], []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as exc:
            errors.append((n, f"{name}:{n}: not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(obj, dict):
            errors.append((n, f"{name}:{n}: expected a JSON object, got {type(obj).__name__}"))
            continue
        rows.append((n, obj))
    return rows, errors


def _cell(value: str) -> Any:
    try:
        return json.loads(value)
    except (json.JSONDecodeError, ValueError):
        return value


def _parse_csv(text: str, name: str) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    reader = csv.reader(io.StringIO(text))
    rows, errors = [], []
    header = None
    for row in reader:
        n = reader.line_num
        if not any(c.strip() for c in row):
            continue
        if header is None:
            header = [c.strip() for c in row]
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup or not all(header):
                errors.append((n, f"{name}:{n}: the header needs distinct, non-empty column names, got {header}"))
                return [], errors
            continue
        if len(row) != len(header):
            errors.append((n, f"{name}:{n}: expected {len(header)} cells (header: {','.join(header)}), "
                              f"got {len(row)}"))
            continue
        rows.append((n, {h: _cell(c.strip()) for h, c in zip(header, row, strict=True) if c.strip() != ""}))
    if header is None:
        errors.append((1, f"{name}:1: empty CSV manifest (a header row and one row per item are needed)"))
    return rows, errors


def _validate(n: int, obj: dict, name: str, base_dir: str, hooks: bool) -> tuple[Item | None, list[str]]:
    where = f"{name}:{n}"
    obj = dict(obj)
    job = obj.pop("job", DEFAULT_JOB)
    item_id = obj.pop("id", None)
    if not isinstance(job, str):
        return None, [f"{where}: 'job' must be a string, got {job!r}"]
    try:
        spec = get_job(job)
    except ValueError as exc:
        return None, [f"{where}: {exc}"]
    errors = []
    fields: dict[str, Any] = {}
    for key, value in obj.items():
        if key in TEST_HOOKS:
            if not hooks:
                errors.append(f"{where}: {key!r} is a test hook, honoured only with CSDKIT_BATCH_TEST_HOOKS=1")
            elif value not in TEST_CRASH_MODES:
                errors.append(f"{where}: {key} must be one of {list(TEST_CRASH_MODES)}, got {value!r}")
            else:
                fields[key] = value
            continue
        target = spec.aliases.get(key, key)
        if target not in spec.required and target not in spec.options:
            errors.append(f"{where}: unknown option {key!r} for job {job!r} (it accepts: "
                          f"{', '.join(sorted(spec.fields))})")
            continue
        if target in fields:
            errors.append(f"{where}: {key!r} and {target!r} are the same option; give one")
            continue
        fields[target] = value
    for req in spec.required:
        if req not in fields:
            errors.append(f"{where}: missing required field {req!r} for job {job!r}")
        elif req in _PATH_FIELDS + ("prompt",) and (not isinstance(fields[req], str) or not fields[req].strip()):
            errors.append(f"{where}: {req!r} must be a non-empty string, got {fields[req]!r}")
    try:
        json.dumps(fields, allow_nan=False)
    except (TypeError, ValueError) as exc:
        errors.append(f"{where}: every field must be a JSON value (string, number, bool, null, list, dict): {exc}")
    if errors:
        return None, errors
    if item_id is None:
        item_id = stable_id(job, fields)
    elif not isinstance(item_id, str) or not _ID.match(item_id):
        errors.append(f"{where}: 'id' must be 1-100 characters of letters, digits, '.', '_', '-' (not starting "
                      f"with '.', '_' or '-'), got {item_id!r}")
    if errors:
        return None, errors
    return Item(item_id, job, n, fields, base_dir), []


def load_manifest(manifest: str | os.PathLike | Iterable[Mapping[str, Any]]) -> list[Item]:
    """Parse and validate a manifest (a ``.jsonl`` / ``.csv`` path, or a list of dicts).

    Every problem is collected before anything runs; :class:`ManifestError` (a ValueError) lists them,
    each as ``"FILE:LINE: message"``. Duplicate ids (two items with the same inputs and no ``id``, or the
    same ``id`` twice) are errors naming both lines.
    """
    hooks = os.environ.get("CSDKIT_BATCH_TEST_HOOKS") == "1"
    if isinstance(manifest, (str, os.PathLike)):
        path = Path(manifest)
        if not path.is_file():
            raise ManifestError([f"manifest not found: {path}"])
        name, base_dir = str(path), str(path.resolve().parent)
        text = path.read_text(encoding="utf-8-sig")
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson", ".json"):
            rows, errors = _parse_jsonl(text, name)
        elif suffix in (".csv", ".tsv"):
            rows, errors = _parse_csv(text, name)
        else:
            raise ManifestError([f"manifest {path}: expected a .jsonl or .csv file, got {suffix or 'no suffix'!r}"])
    else:
        name, base_dir = "<manifest>", os.getcwd()
        rows, errors = [], []
        for n, obj in enumerate(manifest, 1):
            if not isinstance(obj, Mapping):
                errors.append((n, f"{name}:{n}: expected a dict, got {type(obj).__name__}"))
            else:
                rows.append((n, dict(obj)))
    items: list[Item] = []
    seen: dict[str, int] = {}
    for n, obj in rows:
        item, errs = _validate(n, obj, name, base_dir, hooks)
        errors.extend((n, e) for e in errs)
        if item is None:
            continue
        if item.id in seen:
            errors.append((n, f"{name}:{n}: id {item.id!r} is already used by line {seen[item.id]} (identical "
                              "items need distinct 'id's)"))
            continue
        seen[item.id] = n
        items.append(item)
    if not errors and not items:
        errors.append((0, f"{name}: the manifest has no items"))
    if errors:
        raise ManifestError([e for _, e in sorted(errors, key=lambda e: e[0])])
    return items
