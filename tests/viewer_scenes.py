"""Shared helpers of the viewer tests: a UV sphere with a known texture, headless Chromium, image stats."""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from csdkit.geometry.mesh import Mesh

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
#: Flags of the browser tests: software WebGL (SwiftShader), nothing that calls home.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-default-apps", "--disable-dev-shm-usage", "--disable-extensions",
                  "--mute-audio",
                  "--force-device-scale-factor=1", "--window-size=1280,1000")
#: The texture's colour bands (by longitude, u) and the white polar cap (the top rows: v near 1).
BANDS = ((0.85, 0.10, 0.10), (0.10, 0.70, 0.20), (0.15, 0.25, 0.90), (0.95, 0.85, 0.10))


def banded_sphere(rings: int = 24, segments: int = 48) -> Mesh:
    """A unit UV sphere (longitude/latitude UVs, seam on +Z) with a 4-band texture and a white cap.

    u = longitude / 360 starting on +Z growing towards +X; v = 1 at the north pole (+Y). The texture
    ``[64, 128, 3]`` has four vertical colour bands (:data:`BANDS`) and its top 20 rows white.
    """
    i = torch.arange(rings + 1, dtype=torch.float64)
    j = torch.arange(segments + 1, dtype=torch.float64)
    theta, phi = math.pi * i / rings, 2 * math.pi * j / segments
    v = torch.stack([torch.sin(theta)[:, None] * torch.sin(phi)[None],
                     torch.cos(theta)[:, None].expand(-1, segments + 1),
                     torch.sin(theta)[:, None] * torch.cos(phi)[None]], -1).reshape(-1, 3)
    uv = torch.stack([(j / segments)[None].expand(rings + 1, -1),
                      (1 - i / rings)[:, None].expand(-1, segments + 1)], -1).reshape(-1, 2)
    faces = []
    for a in range(rings):
        for b in range(segments):
            p, q = a * (segments + 1) + b, (a + 1) * (segments + 1) + b
            if a > 0:  # no zero-area triangles at the poles
                faces.append((p, q, p + 1))
            if a < rings - 1:
                faces.append((p + 1, q, q + 1))
    f = torch.tensor(faces)
    tex = torch.zeros(64, 128, 3)
    for k, c in enumerate(BANDS):
        tex[:, k * 32:(k + 1) * 32] = torch.tensor(c)
    tex[:20] = 1.0
    return Mesh(v.float(), f, uv=uv.float(), face_uv=f, texture=tex)


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def start_chromium(user_data_dir: str | None = None):
    """A Selenium driver on Debian's chromium + chromedriver (explicit paths: Selenium Manager never runs)."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium >= 4.23: never download a driver or a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={user_data_dir or tempfile.mkdtemp(prefix='csdkit-chromium-')}")
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def remove_profile(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def png_to_float(png: bytes) -> np.ndarray:
    """PNG bytes -> ``[H, W, 3]`` float64 in [0, 1]."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64) / 255.0


def foreground(img: np.ndarray, background: float = 0.6, tol: float = 0.03) -> np.ndarray:
    """``[H, W]`` bool: pixels that differ from the flat grey background."""
    return np.abs(img - background).sum(-1) > tol


def band_fractions(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fraction of the foreground whose chromaticity is nearest to each band colour and to white ``[5]``."""
    palette = np.array([*BANDS, (1.0, 1.0, 1.0)])
    px = img[mask]
    chroma = px / np.maximum(px.sum(-1, keepdims=True), 1e-6)
    pal = palette / palette.sum(-1, keepdims=True)
    nearest = np.linalg.norm(chroma[:, None] - pal[None], axis=-1).argmin(1)
    return np.bincount(nearest, minlength=len(palette)) / max(len(px), 1)
