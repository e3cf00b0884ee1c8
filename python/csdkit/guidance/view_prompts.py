"""View-dependent prompts: ``"a corgi"`` -> ``"a corgi, back view"`` for a camera behind the object.

Text-to-image models draw the front of things; telling them which side a render shows reduces
multi-face ("Janus") artefacts. The view is chosen from the camera's azimuth and elevation
(degrees, csdkit conventions: azimuth 0 looks at the front face on +Z, see
:mod:`csdkit.render.cameras`), with the thresholds of the official CSD / threestudio code:

* ``overhead`` when elevation > 60 degrees (checked first);
* ``front`` when |azimuth| < 45 degrees;
* ``back`` when |azimuth| > 135 degrees;
* ``side`` otherwise.
"""

from __future__ import annotations

import dataclasses

import torch

VIEWS = ("front", "side", "back", "overhead")


@dataclasses.dataclass(frozen=True)
class ViewPrompts:
    """Chooses a view suffix per camera.

    Attributes:
        front_threshold: half-width in degrees of the azimuth band called ``front``.
        back_threshold: half-width in degrees of the azimuth band (around 180) called ``back``.
        overhead_threshold: elevation in degrees above which a view is ``overhead``.
        template: how a suffix is appended; ``{prompt}`` and ``{view}`` are replaced.
    """

    front_threshold: float = 45.0
    back_threshold: float = 45.0
    overhead_threshold: float = 60.0
    template: str = "{prompt}, {view} view"

    def __post_init__(self) -> None:
        for name in ("front_threshold", "back_threshold"):
            v = getattr(self, name)
            if not 0.0 <= v <= 90.0:
                raise ValueError(f"ViewPrompts(): {name} must be in [0, 90] degrees, got {v}")
        if "{prompt}" not in self.template or "{view}" not in self.template:
            raise ValueError(f"ViewPrompts(): template must contain {{prompt}} and {{view}}, got "
                             f"{self.template!r}")

    def prompts(self, prompt: str) -> list[str]:
        """The four prompts in :data:`VIEWS` order."""
        return [self.template.format(prompt=prompt, view=v) for v in VIEWS]

    def view_index(self, azimuth: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
        """Index into :data:`VIEWS` per camera.

        Args:
            azimuth: ``[B]`` degrees, any range (wrapped to (-180, 180]).
            elevation: ``[B]`` degrees.

        Returns:
            ``[B]`` int64 on the inputs' device.
        """
        az = torch.remainder(azimuth.float() + 180.0, 360.0) - 180.0  # [-180, 180)
        idx = torch.full(az.shape, VIEWS.index("side"), dtype=torch.int64, device=az.device)
        idx = torch.where(az.abs() < self.front_threshold, VIEWS.index("front"), idx)
        idx = torch.where(az.abs() > 180.0 - self.back_threshold, VIEWS.index("back"), idx)
        overhead = elevation.float().to(az.device) > self.overhead_threshold
        idx = torch.where(overhead, VIEWS.index("overhead"), idx)
        return idx

    def to_config(self) -> dict:
        return dataclasses.asdict(self)
