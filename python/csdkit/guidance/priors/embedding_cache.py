"""On-disk cache of text embeddings, keyed by model and prompt.

Text encoders are expensive to hold (DeepFloyd IF's T5-XXL encoder has 4.7 B parameters) and
their output for a prompt never changes, so priors compute each prompt once and store it here.
One file per (model key, prompt): ``<dir>/<sha256(key, prompt)[:40]>.pt``, written atomically
(temporary file + rename) and read with ``torch.load(weights_only=True)``. A file that cannot be
read, or that holds another key or prompt, is ignored (with a warning), deleted and rebuilt, so a
corrupted cache never breaks a run.

The directory is, in order: the ``directory`` argument, ``$CSDKIT_CACHE_DIR/embeddings``, or
``~/.cache/csdkit/embeddings``.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile
import warnings

import torch

FORMAT_VERSION = 1


def default_cache_dir() -> pathlib.Path:
    """``$CSDKIT_CACHE_DIR/embeddings`` or ``~/.cache/csdkit/embeddings``."""
    root = os.environ.get("CSDKIT_CACHE_DIR")
    base = pathlib.Path(root).expanduser() if root else pathlib.Path.home() / ".cache" / "csdkit"
    return base / "embeddings"


class EmbeddingCache:
    """Text embeddings on disk, one file per (model key, prompt).

    Args:
        directory: where the files live (created on first write); ``None`` for the default
            (see the module docstring).

    Attributes:
        hits, misses: counts of :meth:`load` calls that found / did not find a valid entry.
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.directory = (pathlib.Path(directory).expanduser() if directory is not None
                          else default_cache_dir())
        self.hits = 0
        self.misses = 0

    def path(self, key: str, prompt: str) -> pathlib.Path:
        """File that holds the embedding of ``prompt`` under model ``key``."""
        digest = hashlib.sha256(f"{key}\x00{prompt}".encode()).hexdigest()[:40]
        return self.directory / f"{digest}.pt"

    def load(self, key: str, prompt: str) -> torch.Tensor | None:
        """The stored embedding (on CPU) or ``None`` when absent or unreadable."""
        path = self.path(key, prompt)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            record = torch.load(path, map_location="cpu", weights_only=True)
            ok = (isinstance(record, dict) and record.get("format") == FORMAT_VERSION
                  and record.get("key") == key and record.get("prompt") == prompt
                  and isinstance(record.get("embedding"), torch.Tensor))
            if not ok:
                raise ValueError("the file holds another key, prompt or format")
            embedding = record["embedding"]
            if not torch.isfinite(embedding).all():
                raise ValueError("the stored embedding holds NaN or Inf")
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a cache miss
            warnings.warn(f"csdkit embedding cache: ignoring unreadable entry {path} ({exc}); "
                          f"it will be recomputed", RuntimeWarning, stacklevel=3)
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return embedding

    def store(self, key: str, prompt: str, embedding: torch.Tensor) -> None:
        """Write the embedding atomically; failures to write only warn (the cache is optional)."""
        path = self.path(key, prompt)
        record = {"format": FORMAT_VERSION, "key": key, "prompt": prompt,
                  "embedding": embedding.detach().to("cpu").contiguous().clone()}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    torch.save(record, f)
                os.replace(tmp, path)
            except BaseException:
                pathlib.Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            warnings.warn(f"csdkit embedding cache: could not write {path} ({exc})", RuntimeWarning,
                          stacklevel=3)

    def clear(self) -> int:
        """Delete every cache file in the directory; returns how many were removed."""
        if not self.directory.is_dir():
            return 0
        n = 0
        for p in self.directory.glob("*.pt"):
            p.unlink(missing_ok=True)
            n += 1
        return n

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r}, hits={self.hits}, misses={self.misses})"


def module_fingerprint(module: torch.nn.Module, *, n_tensors: int = 4, n_values: int = 64) -> str:
    """A cheap identity for a model's weights: class, config and a few values of a few tensors.

    Two text encoders with the same architecture but different weights (e.g. two random
    initializations) get different fingerprints, so their embeddings never share cache entries.
    """
    h = hashlib.sha256(type(module).__qualname__.encode())
    config = getattr(module, "config", None)
    if config is not None:
        to_json = getattr(config, "to_json_string", None)
        text = to_json() if callable(to_json) else repr(sorted(dict(config).items()))
        h.update(text.encode())
    tensors = list(module.state_dict().items())
    picked = tensors[:n_tensors] + tensors[-n_tensors:] if len(tensors) > 2 * n_tensors else tensors
    with torch.no_grad():
        for name, t in picked:
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            if t.device.type != "meta" and t.numel():
                vals = t.reshape(-1)[:n_values].detach().to("cpu", torch.float64)
                h.update(vals.numpy().tobytes())
    return h.hexdigest()[:16]
