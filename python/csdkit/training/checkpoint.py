"""Atomic checkpoints: a crash while writing never leaves a broken or half-written file behind."""

from __future__ import annotations

import os
import pathlib
import re
import tempfile

import torch

_CKPT = re.compile(r"^step_(\d+)\.pt$")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically (temporary file + rename)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def checkpoint_path(folder: str | os.PathLike, step: int) -> pathlib.Path:
    return pathlib.Path(folder) / f"step_{step:07d}.pt"


def list_checkpoints(folder: str | os.PathLike) -> list[tuple[int, pathlib.Path]]:
    """``(step, path)`` of the checkpoints in ``folder``, oldest first (temporary files ignored)."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _CKPT.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_latest(folder: str | os.PathLike, map_location="cpu") -> dict | None:
    """The newest readable checkpoint in ``folder`` (an unreadable one is skipped), or None."""
    for _, path in reversed(list_checkpoints(folder)):
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except Exception:  # noqa: BLE001 - a damaged file falls back to the previous checkpoint
            continue
    return None


def prune(folder: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for _, path in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        path.unlink(missing_ok=True)
