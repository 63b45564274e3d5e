"""Start local torch.distributed workers for the tests: a free port and spawned processes that must finish."""

from __future__ import annotations

import multiprocessing as mp
import socket
from collections.abc import Callable
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(target: Callable[..., Any], world: int, *args: Any, timeout: float = 120.0) -> None:
    """Run ``target(rank, world, port, *args)`` in ``world`` spawned processes; fail the test if any hangs."""
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=target, args=(rank, world, port, *args)) for rank in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=timeout)
    for p in procs:
        if p.is_alive():
            p.kill()
            pytest.fail(f"distributed worker {target.__name__}{args} did not finish within {timeout:g} s")
