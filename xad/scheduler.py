"""Per-sample audit work on a Dask cluster: ``local`` (a ``distributed.LocalCluster``, one worker
process per core, one thread each) or ``tcp://host:8786`` (a running scheduler).

Each task gets one sample's arrays and the weights folder's path (which every worker must see at
the same path); a worker loads the model once (not per task) and returns the explanation, which
the caller writes into the run's ``partial/`` like a local run's. ``dask[distributed]`` is an
optional dependency: without it the caller gets a one-line message saying how to install it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import numpy as np

from xad.data.transforms import DataError

INSTALL = "pip install 'dask[distributed]==2026.8.0'"


def connect(scheduler: str):  # noqa: ANN201 - (distributed.Client, LocalCluster or None)
    """A client for ``scheduler`` ("local" starts a LocalCluster on this machine's cores)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise DataError(f"--scheduler needs dask's distributed scheduler, which is not installed: "
                        f"{INSTALL} (or pip install 'xad[dask]')") from None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        return Client(cluster), cluster
    if not scheduler.startswith(("tcp://", "tls://")):
        raise DataError(f"--scheduler {scheduler}: expected 'local' or a scheduler address like tcp://host:8786")
    try:
        return Client(scheduler, timeout="20s"), None
    except (OSError, TimeoutError) as exc:
        raise DataError(f"--scheduler {scheduler}: no Dask scheduler answers there ({exc})") from exc


@lru_cache(maxsize=4)
def _worker_model(weights: str, stamp: float):  # noqa: ANN202 - the model, loaded once per worker
    import torch

    from xad.weights import load_model

    try:  # as many torch threads as the worker has task threads (one on a LocalCluster)
        from distributed import get_worker

        torch.set_num_threads(max(1, get_worker().state.nthreads))
    except (ImportError, ValueError):
        pass
    return load_model(weights, expect="VAEGAN")[0]


def explain_task(explain: Callable, weights: str, stamp: float, image: np.ndarray, x_rec: np.ndarray,
                 mask: np.ndarray | None, params: Any) -> dict:  # noqa: ANN401 - AuditParams
    """One sample's explanation on a worker: ``explain(image, x_rec, mask, model, params)`` (the
    audit's per-sample function, passed in by reference); ``stamp``: the weights file's mtime, so a
    retrained model in the same folder is reloaded."""
    return explain(image, x_rec, mask, _worker_model(weights, stamp), params)


def explain_on_cluster(scheduler: str, explain: Callable, weights: str,
                       items: list[tuple[int, np.ndarray, np.ndarray, Any]],
                       params: Any) -> Iterator[tuple[int, dict]]:  # noqa: ANN401
    """Submit every (index, image, reconstruction, mask) and yield (index, result) as each finishes."""
    from distributed import as_completed

    client, cluster = connect(scheduler)
    stamp = os.stat(os.path.join(weights, "model.safetensors")).st_mtime
    try:
        futures = {client.submit(explain_task, explain, weights, stamp, image, x_rec, mask, params, pure=False): i
                   for i, image, x_rec, mask in items}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
