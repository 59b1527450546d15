"""Where independent simulations run: local worker processes (default), or an existing dask.distributed cluster.

    with pool(workers=4) as ex:                      # concurrent.futures.ProcessPoolExecutor
    with pool(scheduler="tcp://10.0.0.5:8786") as ex:  # the cluster's executor (dask.distributed Client)

Both give a `concurrent.futures` executor; the tasks are module-level functions with picklable arguments, and
their files (decks, model libraries) must be at the same paths on the workers (a shared filesystem; a
LocalCluster shares this machine's). The same tasks give the same results on either (tests/test_workers.py).
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Iterator, Optional

from kchip.errors import RunError


@contextmanager
def pool(workers: int = 1, scheduler: Optional[str] = None, timeout_s: float = 30.0) -> Iterator:
    if not scheduler:
        with ProcessPoolExecutor(max_workers=max(1, workers)) as ex:
            yield ex
        return
    try:
        from distributed import Client
    except ImportError:
        raise RunError(f"--scheduler {scheduler}: dask.distributed is not installed (pip install "
                       f"'dask[distributed]')") from None
    try:
        client = Client(scheduler, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        raise RunError(f"--scheduler {scheduler}: no dask scheduler answered within {timeout_s:.0f} s ({exc})") \
            from None
    try:
        yield client.get_executor()
    finally:
        client.close()
