"""Schedules of the global step: values at boundary steps, config round trips, errors."""

from __future__ import annotations

import json
import math

import pytest

from csdkit.guidance import GUIDANCE_PRESETS, Schedule


def test_constant_is_the_same_everywhere():
    s = Schedule.constant(0.25)
    assert [s(k) for k in (0, 1, 10_000, 10**9)] == [0.25] * 4
    assert s.is_constant and s.to_config() == 0.25


@pytest.mark.parametrize("step, expected", [
    (-5, 1.0), (0, 1.0), (100, 1.0),          # before and at start_step: start value
    (101, 1.0 - 0.5 / 9900), (5050, 0.75),    # inside the ramp
    (9999, 0.5 + 0.5 / 9900), (10_000, 0.5),  # at end_step: end value
    (10_001, 0.5), (10**7, 0.5),              # after: end value
])
def test_linear_values_and_boundaries(step, expected):
    s = Schedule.linear(100, 1.0, 0.5, 10_000)
    assert s(step) == pytest.approx(expected, abs=1e-12)


def test_official_list_form_matches_linear():
    s = Schedule.from_config([0, -1.0, -0.5, 10_000])  # csd-sd-refine.yaml uncond_scale
    assert s == Schedule.linear(0, -1.0, -0.5, 10_000)
    assert s(0) == -1.0 and s(5000) == pytest.approx(-0.75) and s(10_000) == -0.5


def test_if_timestep_switch_official_form():
    """``max_step_percent: [5000, 0.98, 0.5, 5001]``: 0.98 up to step 5000 inclusive, 0.5 from 5001."""
    s = Schedule.from_config(GUIDANCE_PRESETS["csd-nerf-if"]["t_range"][1])
    assert s(0) == 0.98 and s(4999) == 0.98 and s(5000) == 0.98
    assert s(5001) == 0.5 and s(9000) == 0.5


def test_steps_schedule_switches_at_the_knot():
    s = Schedule.steps({0: 0.98, 5000: 0.5, 8000: 0.3})
    assert s(-1) == 0.98 and s(0) == 0.98 and s(4999) == 0.98
    assert s(5000) == 0.5 and s(7999) == 0.5 and s(8000) == 0.3 and s(10**6) == 0.3
    assert s.max_value() == 0.98 and s.min_value() == 0.3 and not s.is_constant


def test_piecewise_linear_through_three_knots():
    s = Schedule([(0, 0.0), (10, 1.0), (30, 0.0)])
    assert [s(k) for k in (0, 5, 10, 20, 30, 40)] == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0, 0.0])


@pytest.mark.parametrize("s", [
    Schedule.constant(3.0),
    Schedule.linear(0, 0.0, 1.0, 5000),
    Schedule.steps({0: 0.98, 5000: 0.5}),
    Schedule([(0, 0.0), (10, 1.0), (30, 0.0)]),
])
def test_config_round_trip_through_json(s):
    cfg = json.loads(json.dumps(s.to_config()))
    back = Schedule.from_config(cfg)
    assert back == s and hash(back) == hash(s)
    assert [back(k) for k in range(-2, 6000, 97)] == [s(k) for k in range(-2, 6000, 97)]
    assert eval(repr(s), {"Schedule": Schedule}) == s  # repr is valid Python


def test_from_config_accepts_dict_forms():
    assert Schedule.from_config({"constant": 2.0}) == Schedule.constant(2.0)
    assert Schedule.from_config({"points": [[0, 1.0], [10, 2.0]]}) == Schedule.linear(0, 1.0, 2.0, 10)
    assert Schedule.from_config({"mode": "step", "points": [[0, 1.0], [10, 2.0]]})(10) == 2.0
    assert Schedule.from_config([7]) == Schedule.constant(7.0)


@pytest.mark.parametrize("bad, exc, match", [
    ("0.5", ValueError, "must be a number"),
    (True, TypeError, "bool"),
    ([0, 1.0, 2.0], ValueError, "start_step, start, end, end_step"),
    ({"mode": "linear"}, ValueError, "points"),
    ([10, 1.0, 2.0, 10], ValueError, "end_step must be > start_step"),
    ([0, float("nan"), 1.0, 10], ValueError, "finite"),
])
def test_bad_configs_raise(bad, exc, match):
    with pytest.raises(exc, match=match):
        Schedule.from_config(bad)


def test_bad_points_raise():
    with pytest.raises(ValueError, match="strictly increasing"):
        Schedule([(10, 1.0), (5, 2.0)])
    with pytest.raises(ValueError, match="at least one"):
        Schedule([])
    with pytest.raises(TypeError, match="steps must be ints"):
        Schedule([(0.5, 1.0)])
    with pytest.raises(ValueError, match="mode"):
        Schedule([(0, 1.0)], mode="cosine")
    with pytest.raises(TypeError, match="values must be numbers"):
        Schedule([(0, "1")])
    assert math.isclose(Schedule([(0.0, 1.0), (4.0, 3.0)])(2), 2.0)  # integral floats are accepted
