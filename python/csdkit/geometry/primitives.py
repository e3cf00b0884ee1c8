"""Procedural meshes that ship with csdkit (no binary assets): the demo vase and test primitives."""

from __future__ import annotations

import math

import torch

from .mesh import Mesh


def lathe(profile: list[tuple[float, float]], segments: int = 48) -> Mesh:
    """Revolve a profile ``[(radius, y), ...]`` (bottom to top) around +Y; closed with flat caps.

    Returns a watertight :class:`Mesh` (float32 vertices, int64 faces) with outward normals.
    """
    if len(profile) < 2:
        raise ValueError(f"lathe(): profile needs at least 2 points, got {len(profile)}")
    if segments < 3:
        raise ValueError(f"lathe(): segments must be >= 3, got {segments}")
    rings = len(profile)
    angles = torch.arange(segments, dtype=torch.float64) * (2 * math.pi / segments)
    r = torch.tensor([p[0] for p in profile], dtype=torch.float64)
    y = torch.tensor([p[1] for p in profile], dtype=torch.float64)
    ring_v = torch.stack([r[:, None] * torch.sin(angles)[None], y[:, None].expand(rings, segments),
                          r[:, None] * torch.cos(angles)[None]], dim=-1).reshape(-1, 3)
    bottom, top = rings * segments, rings * segments + 1
    verts = torch.cat([ring_v, torch.tensor([[0.0, profile[0][1], 0.0], [0.0, profile[-1][1], 0.0]],
                                            dtype=torch.float64)])
    faces = []
    for i in range(rings - 1):
        for j in range(segments):
            a, b = i * segments + j, i * segments + (j + 1) % segments
            c, d = a + segments, b + segments
            faces += [(a, b, d), (a, d, c)]
    last = (rings - 1) * segments
    for j in range(segments):
        faces.append((bottom, (j + 1) % segments, j))
        faces.append((top, last + j, last + (j + 1) % segments))
    return Mesh(verts.float(), torch.tensor(faces, dtype=torch.int64))


def demo_vase(segments: int = 64) -> Mesh:
    """The demo asset: a vase (foot, belly, neck, lip), about 8k faces, unit radius, +Y up."""
    profile = []
    n = 48
    for k in range(n + 1):
        y = -1.0 + 2.0 * k / n
        belly = 0.55 * math.exp(-((y + 0.15) / 0.55) ** 2)
        neck = 0.18 + 0.12 * max(0.0, (y - 0.55) / 0.45) ** 2
        radius = max(neck, 0.2 + belly) if y > -0.9 else 0.32 + 0.4 * (y + 1.0)
        profile.append((radius, y * 0.95))
    return lathe(profile, segments).normalized(verbose=False)


def icosphere(subdivisions: int = 3, radius: float = 1.0) -> Mesh:
    """A geodesic sphere (trimesh's icosphere)."""
    import trimesh

    tm = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Mesh(tm.vertices, tm.faces)


def torus(major: float = 0.7, minor: float = 0.3, major_sections: int = 48, minor_sections: int = 24) -> Mesh:
    """A torus around +Y."""
    import trimesh

    return _z_to_y(trimesh.creation.torus(major_radius=major, minor_radius=minor, major_sections=major_sections,
                                          minor_sections=minor_sections))


def _z_to_y(tm) -> Mesh:
    """A trimesh mesh built around +Z, turned to stand along +Y like csdkit's other primitives."""
    v = torch.as_tensor(tm.vertices, dtype=torch.float32)
    return Mesh(torch.stack([v[:, 0], v[:, 2], -v[:, 1]], dim=-1), tm.faces)


def cube(half: float = 0.72) -> Mesh:
    """An axis-aligned cube of half side ``half``, centred at the origin (12 triangles)."""
    import trimesh

    tm = trimesh.creation.box((2 * half,) * 3)
    return Mesh(tm.vertices, tm.faces)


def cylinder(radius: float = 0.72, height: float = 1.7, sections: int = 48) -> Mesh:
    """A closed cylinder along +Y, centred at the origin."""
    import trimesh

    return _z_to_y(trimesh.creation.cylinder(radius=radius, height=height, sections=sections))


def cone(radius: float = 0.85, height: float = 1.8, sections: int = 48) -> Mesh:
    """A closed cone along +Y (apex up), its bounding box centred at the origin."""
    import trimesh

    tm = trimesh.creation.cone(radius=radius, height=height, sections=sections)
    tm.apply_translation((0.0, 0.0, -height / 2))
    return _z_to_y(tm)


#: Procedural meshes addressable by name (``@vase``, ``@sphere``, ``@torus``, ...) in the CLI and the jobs.
BUILTIN_MESHES = {"vase": demo_vase, "sphere": lambda: icosphere(3), "torus": torus, "cube": cube,
                  "cylinder": cylinder, "cone": cone}


def builtin_mesh(name: str) -> Mesh:
    """The procedural mesh ``name`` (with or without a leading ``@``)."""
    key = name[1:] if name.startswith("@") else name
    if key not in BUILTIN_MESHES:
        raise ValueError(f"unknown built-in mesh {name!r}; available: "
                         f"{', '.join('@' + k for k in BUILTIN_MESHES)}")
    return BUILTIN_MESHES[key]()
