"""The run directory: config, metrics, checkpoints, previews and results of one job."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import numpy as np
import torch

from .checkpoint import atomic_write_bytes


def to_uint8_image(image) -> np.ndarray:
    """``[H, W, 3|4]`` float in [0, 1] (tensor or array) or uint8 -> ``uint8 [H, W, C]`` array."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an image [H, W, 1|3|4], got shape {list(image.shape)}")
    return image[..., 0] if image.shape[2] == 1 else image


def save_png(image, path: str | os.PathLike) -> pathlib.Path:
    """Save an image (see :func:`to_uint8_image`) as PNG, atomically."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8_image(image)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return pathlib.Path(path)


def image_grid(images, columns: int | None = None) -> torch.Tensor:
    """Tile ``[N, H, W, C]`` images into one ``[rows*H, columns*W, C]`` image (row-major)."""
    images = torch.as_tensor(images)
    n, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = images.new_ones(rows * h, columns * w, c)
    for i in range(n):
        r, q = divmod(i, columns)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = images[i]
    return grid


class RunDirectory:
    """A job's folder::

        config.json        everything needed to reproduce the run
        metrics.jsonl      one JSON object per logged step (step, loss, grad_norm, t, lr, seconds, ...)
        checkpoints/       step_XXXXXXX.pt, written atomically
        previews/          step_XXXXXXX.png grids of views
        report.html        previews, loss curve and results in one offline page
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = pathlib.Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.path / "checkpoints"
        self.previews = self.path / "previews"

    # ---- config ---------------------------------------------------------------------------------
    @property
    def config_path(self) -> pathlib.Path:
        return self.path / "config.json"

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_bytes(self.config_path, json.dumps(config, indent=2, sort_keys=True, default=str).encode())

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise FileNotFoundError(f"{self.path} has no config.json: is it a csdkit run directory?")
        return json.loads(self.config_path.read_text())

    # ---- metrics --------------------------------------------------------------------------------
    @property
    def metrics_path(self) -> pathlib.Path:
        return self.path / "metrics.jsonl"

    def append_metrics(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, default=float) + "\n")
            f.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        out = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash
                continue
        return out

    def truncate_metrics(self, before_step: int) -> None:
        """Keep only records with ``step < before_step`` (used when resuming from a checkpoint)."""
        kept = [r for r in self.read_metrics() if int(r.get("step", -1)) < before_step]
        atomic_write_bytes(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept).encode())

    # ---- previews -------------------------------------------------------------------------------
    def save_preview(self, step: int, image) -> pathlib.Path:
        return save_png(image, self.previews / f"step_{step:07d}.png")

    def list_previews(self) -> list[pathlib.Path]:
        return sorted(self.previews.glob("step_*.png")) if self.previews.is_dir() else []
