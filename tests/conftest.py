"""Shared fixtures: device parametrization (CUDA cases skip cleanly without a GPU)."""

from __future__ import annotations

import csdkit
import pytest
import torch


def _cuda_ready() -> bool:
    return csdkit.has_cuda()


DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[
        pytest.mark.cuda,
        pytest.mark.skipif(not _cuda_ready(), reason="needs a CUDA device and a CUDA build of csdkit"),
    ]),
]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Runs a test once per device: ``cpu`` always, ``cuda`` when a GPU and a CUDA build exist."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
