"""Shared fixtures: device parametrization (CUDA cases skip cleanly without a GPU)."""

from __future__ import annotations

import os

import pytest
import torch

import csdkit

# Tests never reach the network: Hugging Face libraries read this when they are first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The tests' torch work is many small ops, which run several times faster on one intra-op thread on a
# small machine (OpenMP workers spin between ops and compete with csdkit's own kernel threads, which
# keep their default count so the parallel kernels are still exercised with several threads).
torch.set_num_threads(int(os.environ.get("CSDKIT_TEST_TORCH_THREADS", "1")))


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


@pytest.fixture(autouse=True, scope="session")
def _private_csdkit_cache(tmp_path_factory):
    """Keeps the embedding cache (and any other csdkit cache) of the test run out of ~/.cache."""
    old = os.environ.get("CSDKIT_CACHE_DIR")
    os.environ["CSDKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("csdkit-cache"))
    yield
    if old is None:
        os.environ.pop("CSDKIT_CACHE_DIR", None)
    else:
        os.environ["CSDKIT_CACHE_DIR"] = old
