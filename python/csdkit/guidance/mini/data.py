"""Procedural training data for the MiniPrior: textured primitives rendered analytically in torch.

Each sample is one primitive (sphere, cube, torus, cylinder or cone) with a random rotation, scale
and offset, seen by a fixed pinhole camera, lit by one directional light plus ambient light, over a
plain neutral background. Surfaces carry a solid colour or a two-colour solid texture (stripes,
checkers, dots) defined in object space, so patterns rotate with the object. Rays are intersected
analytically (the torus by sphere tracing its signed distance), with 2x2 supersampling.

Everything is driven by an explicit ``torch.Generator``, so a batch is a pure function of its seed:
training is reproducible and resumable without storing a data set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Palette: name -> linear RGB in [0, 1] (base albedo before shading).
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.08, 0.08),
    "green": (0.10, 0.70, 0.15),
    "blue": (0.10, 0.22, 0.92),
    "yellow": (0.96, 0.88, 0.10),
    "orange": (1.00, 0.50, 0.04),
    "purple": (0.52, 0.14, 0.72),
    "pink": (1.00, 0.56, 0.76),
    "white": (0.97, 0.97, 0.97),
    "black": (0.04, 0.04, 0.04),
    "gray": (0.50, 0.50, 0.50),
    "brown": (0.45, 0.26, 0.10),
    "cyan": (0.08, 0.84, 0.90),
}
COLORS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("sphere", "cube", "torus", "cylinder", "cone")
PATTERNS: tuple[str, ...] = ("solid", "stripes", "checkers", "dots")
_NEUTRAL = torch.tensor([COLORS.index(c) for c in ("white", "black", "gray")])


@dataclass
class SceneBatch:
    """Parameters of ``B`` scenes (all tensors on CPU).

    Attributes:
        shape: ``[B]`` int64 index into :data:`SHAPES`.
        pattern: ``[B]`` int64 index into :data:`PATTERNS`.
        color1: ``[B]`` int64 index into :data:`COLORS` (base colour).
        color2: ``[B]`` int64 index into :data:`COLORS` (second colour of the pattern; differs from
            ``color1``; unused for solid surfaces).
    """

    shape: torch.Tensor
    pattern: torch.Tensor
    color1: torch.Tensor
    color2: torch.Tensor

    def __len__(self) -> int:
        return int(self.shape.shape[0])


def sample_scenes(n: int, generator: torch.Generator, p_solid: float = 0.5) -> SceneBatch:
    """Draws ``n`` scene descriptions: shape uniform, ``solid`` with probability ``p_solid``
    (the three patterns share the rest), colours uniform with ``color2 != color1``."""
    shape = torch.randint(len(SHAPES), (n,), generator=generator)
    solid = torch.rand(n, generator=generator) < p_solid
    pattern = torch.where(solid, 0, torch.randint(1, len(PATTERNS), (n,), generator=generator))
    color1 = torch.randint(len(COLORS), (n,), generator=generator)
    offset = torch.randint(1, len(COLORS), (n,), generator=generator)
    color2 = (color1 + offset) % len(COLORS)
    return SceneBatch(shape=shape, pattern=pattern, color1=color1, color2=color2)


def _random_rotations(n: int, g: torch.Generator) -> torch.Tensor:
    """``[n, 3, 3]`` uniformly random rotation matrices (from random unit quaternions)."""
    q = torch.randn(n, 4, generator=g)
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], dim=1).view(n, 3, 3)


# ---- ray / primitive intersections in object space ------------------------------------------------
# Every function takes object-space rays o, d [R, 3] (d unit length) and returns (t [R], normal [R, 3])
# with t = inf where the ray misses.

def _hit_sphere(o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - 1.0
    disc = b * b - c
    t = -b - disc.clamp_min(0).sqrt()
    t = torch.where((disc > 0) & (t > 0), t, torch.full_like(t, math.inf))
    p = o + d * torch.nan_to_num(t, posinf=0.0)[:, None]
    return t, F.normalize(p, dim=-1)


def _hit_box(o: torch.Tensor, d: torch.Tensor, half: float = 0.72) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t1 = (-half - o) * inv
    t2 = (half - o) * inv
    tmin = torch.minimum(t1, t2)
    tnear, axis = tmin.max(dim=-1)
    tfar = torch.maximum(t1, t2).min(dim=-1).values
    hit = (tnear <= tfar) & (tnear > 0)
    t = torch.where(hit, tnear, torch.full_like(tnear, math.inf))
    normal = torch.zeros_like(o)
    sign = -torch.sign(d.gather(1, axis[:, None]))
    normal.scatter_(1, axis[:, None], sign)
    return t, normal


def _hit_cylinder(o: torch.Tensor, d: torch.Tensor, r: float = 0.72, h: float = 0.85):
    inf = torch.full_like(o[:, 0], math.inf)
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - r * r
    disc = b * b - a * c
    ts = (-b - disc.clamp_min(0).sqrt()) / a.clamp_min(1e-12)
    ys = o[:, 1] + ts * d[:, 1]
    t_side = torch.where((disc > 0) & (ts > 0) & (ys.abs() <= h), ts, inf)
    # caps at y = +-h
    dy = torch.where(d[:, 1].abs() < 1e-9, torch.full_like(d[:, 1], 1e-9), d[:, 1])
    t_cap = torch.minimum((h - o[:, 1]) / dy, (-h - o[:, 1]) / dy)
    t_cap = torch.where(t_cap > 0, t_cap, torch.maximum((h - o[:, 1]) / dy, (-h - o[:, 1]) / dy))
    pc = o + d * t_cap[:, None]
    t_cap = torch.where((t_cap > 0) & (pc[:, 0] ** 2 + pc[:, 2] ** 2 <= r * r), t_cap, inf)
    use_side = t_side <= t_cap
    t = torch.minimum(t_side, t_cap)
    p = o + d * torch.nan_to_num(t, posinf=0.0)[:, None]
    n_side = F.normalize(p * torch.tensor([1.0, 0.0, 1.0]), dim=-1)
    n_cap = torch.zeros_like(p)
    n_cap[:, 1] = torch.sign(p[:, 1])
    return t, torch.where(use_side[:, None], n_side, n_cap)


def _hit_cone(o: torch.Tensor, d: torch.Tensor, r: float = 0.85, y0: float = -0.8, y1: float = 1.0):
    """Cone with apex at ``y = y1`` and a base disc of radius ``r`` at ``y = y0``."""
    inf = torch.full_like(o[:, 0], math.inf)
    k = (r / (y1 - y0)) ** 2
    oy = o[:, 1] - y1
    a = d[:, 0] ** 2 + d[:, 2] ** 2 - k * d[:, 1] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2] - k * oy * d[:, 1]
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - k * oy ** 2
    disc = b * b - a * c
    sq = disc.clamp_min(0).sqrt()
    a_safe = torch.where(a.abs() < 1e-9, torch.full_like(a, 1e-9), a)
    best = inf
    for root in ((-b - sq) / a_safe, (-b + sq) / a_safe):
        y = o[:, 1] + root * d[:, 1]
        ok = (disc > 0) & (root > 0) & (y >= y0) & (y <= y1)
        best = torch.minimum(best, torch.where(ok, root, inf))
    dy = torch.where(d[:, 1].abs() < 1e-9, torch.full_like(d[:, 1], 1e-9), d[:, 1])
    t_base = (y0 - o[:, 1]) / dy
    pb = o + d * t_base[:, None]
    t_base = torch.where((t_base > 0) & (pb[:, 0] ** 2 + pb[:, 2] ** 2 <= r * r), t_base, inf)
    use_side = best <= t_base
    t = torch.minimum(best, t_base)
    p = o + d * torch.nan_to_num(t, posinf=0.0)[:, None]
    radial = F.normalize(p * torch.tensor([1.0, 0.0, 1.0]), dim=-1)
    slope = math.sqrt(k)
    n_side = F.normalize(radial + torch.tensor([0.0, 1.0, 0.0]) * slope, dim=-1)
    n_base = torch.zeros_like(p)
    n_base[:, 1] = -1.0
    return t, torch.where(use_side[:, None], n_side, n_base)


def _hit_torus(o: torch.Tensor, d: torch.Tensor, big: float = 0.72, small: float = 0.3, iters: int = 40):
    """Sphere tracing of the torus ``(|p.xz| - big)^2 + p.y^2 = small^2`` from its bounding sphere."""
    inf = torch.full_like(o[:, 0], math.inf)
    rb = big + small
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - rb * rb
    disc = b * b - c
    t = (-b - disc.clamp_min(0).sqrt()).clamp_min(0)
    t_exit = -b + disc.clamp_min(0).sqrt()
    for _ in range(iters):
        p = o + d * t[:, None]
        q = torch.sqrt(p[:, 0] ** 2 + p[:, 2] ** 2) - big
        sdf = torch.sqrt(q * q + p[:, 1] ** 2) - small
        t = t + sdf
    p = o + d * t[:, None]
    q = torch.sqrt(p[:, 0] ** 2 + p[:, 2] ** 2) - big
    sdf = torch.sqrt(q * q + p[:, 1] ** 2) - small
    hit = (disc > 0) & (sdf.abs() < 2e-3) & (t <= t_exit)
    ring = F.normalize(p * torch.tensor([1.0, 0.0, 1.0]), dim=-1) * big
    normal = F.normalize(p - ring, dim=-1)
    return torch.where(hit, t, inf), normal


_HIT = (_hit_sphere, _hit_box, _hit_torus, _hit_cylinder, _hit_cone)


# ---- textures ---------------------------------------------------------------------------------------
def _pattern_mask(p: torch.Tensor, pattern: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Where the second colour shows: ``p [R, 3]`` object-space points, ``pattern [R]`` index,
    ``params [R, 5]`` (frequency, phase, direction xyz). Returns bool ``[R]``."""
    freq, phase, axis = params[:, 0], params[:, 1], params[:, 2:5]
    stripes = torch.floor(freq * (p * axis).sum(-1) + phase).remainder(2) > 0.5
    cells = torch.floor(freq[:, None] * 0.8 * p + phase[:, None]).sum(-1)
    checkers = cells.remainder(2) > 0.5
    spacing = 2.0 / freq
    q = p / spacing[:, None] + phase[:, None]
    dots = ((q - torch.round(q)).norm(dim=-1) * spacing) < 0.32 * spacing
    return torch.where(pattern == 1, stripes, torch.where(pattern == 2, checkers, torch.where(
        pattern == 3, dots, torch.zeros_like(stripes))))


# ---- rendering --------------------------------------------------------------------------------------
def render_scenes(scenes: SceneBatch, resolution: int, generator: torch.Generator,
                  supersample: int = 2, return_mask: bool = False):
    """Renders ``scenes`` with random poses, lights and backgrounds drawn from ``generator``.

    Returns ``images [B, 3, resolution, resolution]`` float32 in [0, 1] on CPU, and with
    ``return_mask`` also ``mask [B, 1, resolution, resolution]`` float32 coverage in [0, 1].
    """
    g = generator
    n = len(scenes)
    side = resolution * supersample
    # Camera: pinhole at (0, 0, 3.4) looking down -z, 40 degree field of view.
    fov = math.radians(40.0)
    lin = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1
    yy, xx = torch.meshgrid(-lin, lin, indexing="ij")
    dirs = torch.stack([xx * math.tan(fov / 2), yy * math.tan(fov / 2), -torch.ones_like(xx)], -1)
    dirs = F.normalize(dirs.reshape(-1, 3), dim=-1)                      # [P, 3]
    cam = torch.tensor([0.0, 0.0, 3.4])

    rot = _random_rotations(n, g)                                        # object -> world
    scale = 0.78 + 0.3 * torch.rand(n, generator=g)
    center = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([0.35, 0.35, 0.3])
    light = F.normalize(torch.cat([(torch.rand(n, 2, generator=g) - 0.5) * 1.6,
                                   torch.ones(n, 1)], 1), dim=-1)
    ambient = 0.45 + 0.15 * torch.rand(n, generator=g)
    params = torch.cat([2.2 + 1.6 * torch.rand(n, 1, generator=g), torch.rand(n, 1, generator=g),
                        F.normalize(torch.randn(n, 3, generator=g), dim=-1)], 1)
    palette = torch.tensor([PALETTE[c] for c in COLORS])
    jitter = 1 + 0.06 * (torch.rand(n, 2, 3, generator=g) - 0.5)
    col1 = (palette[scenes.color1] * jitter[:, 0]).clamp(0, 1)
    col2 = (palette[scenes.color2] * jitter[:, 1]).clamp(0, 1)
    # Background: a neutral grey level kept away from neutral objects so they stay visible.
    # ``shaded`` estimates the object's mean brightness; a background closer than 0.25 to it is
    # moved to 0.25-0.45 away on the side with more room.
    level = 0.2 + 0.6 * torch.rand(n, generator=g)
    shaded = 0.8 * palette[scenes.color1].mean(-1)
    away = 0.25 + 0.2 * torch.rand(n, generator=g)
    neutral = torch.isin(scenes.color1, _NEUTRAL)
    close = neutral & ((level - shaded).abs() < 0.25)
    moved = torch.where(shaded > 0.5, shaded - away, shaded + away).clamp(0.1, 0.9)
    level = torch.where(close, moved, level)
    tint = 1 + 0.08 * (torch.rand(n, 3, generator=g) - 0.5)
    bg = (level[:, None] * tint).clamp(0, 1)

    images = torch.empty(n, 3, side * side)
    masks = torch.empty(n, 1, side * side)
    for i in range(n):
        rt = rot[i].T
        o = ((cam - center[i]) @ rot[i]) / scale[i]                      # R^T (cam - c) / s
        d = dirs @ rot[i]
        o = o.expand_as(d)
        t, n_obj = _HIT[int(scenes.shape[i])](o, d)
        hit = torch.isfinite(t)
        p = o + d * torch.where(hit, t, torch.zeros_like(t))[:, None]
        n_world = n_obj @ rt
        diffuse = (n_world @ light[i]).clamp_min(0)
        shade = ambient[i] + (1 - ambient[i]) * diffuse
        second = _pattern_mask(p, scenes.pattern[i].expand(p.shape[0]), params[i].expand(p.shape[0], 5))
        albedo = torch.where(second[:, None], col2[i], col1[i])
        rgb = albedo * shade[:, None]
        images[i] = torch.where(hit[:, None], rgb, bg[i]).T
        masks[i, 0] = hit.float()
    images = images.view(n, 3, side, side)
    masks = masks.view(n, 1, side, side)
    if supersample > 1:
        images = F.avg_pool2d(images, supersample)
        masks = F.avg_pool2d(masks, supersample)
    images = images.clamp(0, 1)
    return (images, masks) if return_mask else images


def make_batch(n: int, resolution: int, seed: int, p_solid: float = 0.5):
    """One reproducible training batch: ``(images [n, 3, R, R] in [0, 1], scenes, captions)``."""
    from .text import caption_scenes

    g = torch.Generator().manual_seed(seed)
    scenes = sample_scenes(n, g, p_solid=p_solid)
    images = render_scenes(scenes, resolution, g)
    captions = caption_scenes(scenes, g)
    return images, scenes, captions


def reference_colors(resolution: int = 32, per_color: int = 16, seed: int = 1234) -> torch.Tensor:
    """``[len(COLORS), 3]`` mean rendered foreground colour of solid objects of each palette colour
    (shading included): the yardstick that colour-accuracy evaluations compare against."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for ci in range(len(COLORS)):
        scenes = sample_scenes(per_color, g, p_solid=1.0)
        scenes.color1.fill_(ci)
        img, mask = render_scenes(scenes, resolution, g, return_mask=True)
        fg = (mask > 0.99).float()
        out.append((img * fg).sum((0, 2, 3)) / fg.sum().clamp_min(1))
    return torch.stack(out)
