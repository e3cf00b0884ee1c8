"""Schedules: a number as a function of the global optimization step.

Everything a guidance object uses may change during optimization: the negative-prompt weight
(CSD anneals it), the timestep range (the DeepFloyd IF preset narrows it at step 5000), the
classifier-free guidance scale, the gradient clip. Each is a :class:`Schedule`, a small,
immutable, serializable object::

    Schedule.constant(1.0)                      # 1.0 at every step
    Schedule.linear(0, 0.0, 1.0, 5000)          # 0 -> 1 over steps 0..5000, then 1
    Schedule.steps({0: 0.98, 5000: 0.5})        # 0.98 for steps < 5000, 0.5 from step 5000 on
    Schedule.from_config([0, -1.0, -0.5, 10000])  # the official code's list form

Config forms (what :meth:`Schedule.to_config` writes and :meth:`Schedule.from_config` reads):

* a number: constant;
* ``[start_step, start_value, end_value, end_step]``: linear ramp, the form used by the official
  CSD code (threestudio configs). Before ``start_step`` the value is ``start_value``, after
  ``end_step`` it is ``end_value``, both ends inclusive;
* ``{"mode": "linear" | "step", "points": [[step, value], ...]}``: piecewise-linear or
  piecewise-constant through several knots. A ``step`` schedule takes the value of the last knot
  whose step is ``<=`` the current step (so ``{0: 0.98, 5000: 0.5}`` is 0.5 *at* step 5000).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

_MODES = ("linear", "step")


class Schedule:
    """A piecewise-linear or piecewise-constant function of the global step.

    Args:
        points: knots ``[(step, value), ...]``; steps are ints in strictly increasing order.
        mode: ``"linear"`` interpolates between knots, ``"step"`` holds each knot's value until
            the next knot. Outside the knots the first / last value is held.

    Call it with the step: ``schedule(step) -> float``.
    """

    __slots__ = ("_mode", "_points")

    def __init__(self, points: Sequence[tuple[int, float]], mode: str = "linear") -> None:
        if mode not in _MODES:
            raise ValueError(f"Schedule(): mode must be one of {list(_MODES)}, got {mode!r}")
        pts: list[tuple[int, float]] = []
        for item in points:
            if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2:
                raise ValueError(f"Schedule(): each point must be (step, value), got {item!r}")
            step, value = item
            if isinstance(step, bool) or not isinstance(step, int):
                if isinstance(step, float) and step.is_integer():
                    step = int(step)
                else:
                    raise TypeError(f"Schedule(): steps must be ints, got {type(step).__name__} {step!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Schedule(): values must be numbers, got {type(value).__name__} {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"Schedule(): values must be finite, got {value!r}")
            pts.append((int(step), float(value)))
        if not pts:
            raise ValueError("Schedule(): needs at least one (step, value) point, got none")
        for (s0, _), (s1, _) in zip(pts, pts[1:], strict=False):
            if s1 <= s0:
                raise ValueError(f"Schedule(): steps must be strictly increasing, got {[s for s, _ in pts]}")
        self._points = tuple(pts)
        self._mode = mode

    # ---- constructors ---------------------------------------------------------------------------
    @classmethod
    def constant(cls, value: float) -> Schedule:
        """The same ``value`` at every step."""
        return cls([(0, value)])

    @classmethod
    def linear(cls, start_step: int, start_value: float, end_value: float, end_step: int) -> Schedule:
        """``start_value`` up to ``start_step``, a linear ramp, ``end_value`` from ``end_step`` on.

        The argument order is the official CSD code's ``[start_step, start, end, end_step]``.
        """
        numbers = isinstance(end_step, (int, float)) and isinstance(start_step, (int, float))
        if numbers and end_step <= start_step:
            raise ValueError(f"Schedule.linear(): end_step must be > start_step, got "
                             f"start_step={start_step}, "
                             f"end_step={end_step}")
        return cls([(start_step, start_value), (end_step, end_value)], "linear")

    @classmethod
    def steps(cls, values: Mapping[int, float] | Sequence[tuple[int, float]]) -> Schedule:
        """Piecewise constant: ``{0: 0.98, 5000: 0.5}`` is 0.98 before step 5000, 0.5 from it on."""
        items = sorted(values.items()) if isinstance(values, Mapping) else list(values)
        return cls(items, "step")

    @classmethod
    def from_config(cls, config: Any, name: str = "schedule") -> Schedule:
        """Build a schedule from any config form (see the module docstring) or return a Schedule as is.

        Args:
            config: a number, a 4-list ``[start_step, start, end, end_step]``, a dict
                ``{"mode", "points"}`` / ``{"constant": v}``, or a :class:`Schedule`.
            name: the argument name used in error messages.
        """
        if isinstance(config, Schedule):
            return config
        if isinstance(config, bool):
            raise TypeError(f"Schedule.from_config(): {name} must be a number, a list "
                            f"[start_step, start, end, end_step] or a dict, got bool {config!r}")
        if isinstance(config, (int, float)):
            return cls.constant(config)
        if isinstance(config, Mapping):
            if set(config) == {"constant"}:
                return cls.constant(config["constant"])
            if "points" not in config:
                raise ValueError(f"Schedule.from_config(): {name} dict needs 'points' (and optional 'mode'), "
                                 f"got keys {sorted(config)}")
            return cls([tuple(p) for p in config["points"]], config.get("mode", "linear"))
        if isinstance(config, Sequence) and not isinstance(config, str):
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in config)
            if len(config) == 4 and numeric:
                return cls.linear(config[0], config[1], config[2], config[3])
            if len(config) == 1:
                return cls.from_config(config[0], name)
        raise ValueError(f"Schedule.from_config(): {name} must be a number, a list "
                         f"[start_step, start, end, end_step] or a dict with 'points', got {config!r}")

    # ---- evaluation ------------------------------------------------------------------------------
    def __call__(self, step: int) -> float:
        pts = self._points
        if step <= pts[0][0]:
            return pts[0][1]
        if step >= pts[-1][0]:
            return pts[-1][1]
        for (s0, v0), (s1, v1) in zip(pts, pts[1:], strict=False):
            if s0 <= step < s1:
                if self._mode == "step":
                    return v0
                return v0 + (v1 - v0) * (step - s0) / (s1 - s0)
        return pts[-1][1]  # unreachable: the knots cover [first, last)

    @property
    def points(self) -> tuple[tuple[int, float], ...]:
        """The knots ``((step, value), ...)``."""
        return self._points

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def is_constant(self) -> bool:
        """True when the value never changes."""
        return len({v for _, v in self._points}) == 1

    def max_value(self) -> float:
        """Largest value over all steps (the extremes are at knots)."""
        return max(v for _, v in self._points)

    def min_value(self) -> float:
        """Smallest value over all steps."""
        return min(v for _, v in self._points)

    # ---- serialization ---------------------------------------------------------------------------
    def to_config(self) -> float | list | dict:
        """The most compact config form; ``Schedule.from_config(s.to_config()) == s``."""
        if len(self._points) == 1:
            return self._points[0][1]
        if self._mode == "linear" and len(self._points) == 2:
            (s0, v0), (s1, v1) = self._points
            return [s0, v0, v1, s1]
        return {"mode": self._mode, "points": [[s, v] for s, v in self._points]}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        if len(self._points) == 1 and len(other._points) == 1:
            return self._points == other._points
        return self._points == other._points and self._mode == other._mode

    def __hash__(self) -> int:
        return hash((self._points, self._mode if len(self._points) > 1 else ""))

    def __repr__(self) -> str:
        if len(self._points) == 1:
            return f"Schedule.constant({self._points[0][1]!r})"
        if self._mode == "linear" and len(self._points) == 2:
            (s0, v0), (s1, v1) = self._points
            return f"Schedule.linear({s0}, {v0!r}, {v1!r}, {s1})"
        if self._mode == "step":
            return f"Schedule.steps({dict(self._points)!r})"
        return f"Schedule({list(self._points)!r}, mode={self._mode!r})"


def as_schedule(value: Any, fn: str, name: str) -> Schedule:
    """Coerce a user argument to a :class:`Schedule`, with errors naming ``fn`` and ``name``."""
    try:
        return Schedule.from_config(value, name)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{fn}(): {name}: {exc}") from None


def as_optional_schedule(value: Any, fn: str, name: str) -> Schedule | None:
    """Like :func:`as_schedule` but ``None`` stays ``None`` (a disabled option)."""
    return None if value is None else as_schedule(value, fn, name)
