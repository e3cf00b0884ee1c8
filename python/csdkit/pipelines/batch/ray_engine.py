"""The ``ray`` engine: the same items as Ray tasks (``pip install 'csdkit[ray]'``).

Connects to an existing cluster (``ray_address``, e.g. ``"auto"`` or ``"ray://head:10001"``) or starts a
local Ray instance for the batch (shut down at the end). Each item attempt is one task with a resource
request: ``num_gpus=1`` (and the cluster's CPUs per GPU) when the cluster has GPUs, else ``num_cpus`` =
the item's thread count. Inside the task the item runs in the same isolated worker process as with
the local engine (:mod:`csdkit.pipelines.batch.worker`), so a segfault or an OOM kill takes down only
that item, and the per-item timeout is enforced next to it. Only the driver (the batch process) writes
the status store. At most ``workers`` items (default: what the cluster can run at once) are in flight,
so the store's ``running`` rows are the tasks that hold resources. On a multi-node cluster ``out_dir``
must be on a filesystem every node mounts at the same path.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from .local import cpu_count
from .worker import run_blocking, worker_env


def _ray_item(request: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """The Ray task: run one item attempt in its own worker process on the node the task landed on."""
    return run_blocking(request, worker_env(int(request["threads"])), timeout)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("engine='ray' needs Ray: pip install 'csdkit[ray]' (or pip install ray)") from None
    return ray


def run_ray(tasks: list[Any], *, workers: int | None, timeout: float | None, address: str | None,
            threads: int | None = None,
            start: Callable[[Any, dict[str, Any]], dict[str, Any]],
            finish: Callable[[Any, dict[str, Any]], None]) -> dict[str, Any]:
    """Run ``tasks`` as Ray tasks (``start`` / ``finish`` as in :func:`~.local.run_local`); returns a
    description of the cluster used (``{"address", "cpus", "gpus", "in_flight"}``)."""
    ray = _import_ray()
    started_here = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        else:
            ray.init(num_cpus=cpu_count(), include_dashboard=False, log_to_driver=False,
                     object_store_memory=100 * 2**20)
        started_here = True
    inflight: dict[Any, tuple[Any, dict[str, Any]]] = {}
    try:
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        if gpus:
            window = gpus if workers is None else max(1, workers)
            threads, options = threads or max(1, cpus // gpus), {"num_gpus": 1}
            options["num_cpus"] = threads
        else:
            window = workers if workers is not None else max(1, min(cpus, 4))
            threads = threads or max(1, cpus // window)
            options = {"num_cpus": threads, "num_gpus": 0}
        remote = ray.remote(max_retries=0)(_ray_item)
        queue = collections.deque(tasks)
        while queue or inflight:
            while queue and len(inflight) < window:
                task = queue.popleft()
                request = start(task, {"name": "ray", "threads": threads, "env": {}})
                request["threads"] = threads
                inflight[remote.options(**options).remote(request, timeout)] = (task, request)
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in ready:
                task, request = inflight.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the task (not the item) died: the item failed
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    outcome = {"status": "failed", "error": f"Ray task failed: {type(exc).__name__}: {first}",
                               "outputs": {}, "seconds": None, "info": {}}
                finish(task, outcome)
        return {"address": address or "local", "cpus": cpus, "gpus": gpus, "in_flight": window}
    except BaseException:
        for ref, (task, _) in list(inflight.items()):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or lost: nothing to cancel
                pass
            finish(task, {"status": "interrupted", "error": "interrupted (resumed next run)", "outputs": {},
                          "seconds": None, "info": {}})
        raise
    finally:
        if started_here:
            ray.shutdown()
