"""Process lifecycle: signals only set a flag; stop is graceful, bounded, then forced.

The first SIGINT / SIGTERM sets `stop`, and the agent winds down in order. If it has not
finished after `grace_s`, or a second signal arrives, the main task is cancelled, which
every task handles with bounded cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

__all__ = ["run_until_signalled"]

log = logging.getLogger(__name__)


async def run_until_signalled(
    main: Callable[[asyncio.Event], Awaitable[None]], *, grace_s: float = 10.0
) -> None:
    """Run `main(stop)` until it returns; SIGINT / SIGTERM set `stop`."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.current_task()
    assert task is not None
    watchdog: asyncio.TimerHandle | None = None

    def on_signal(signum: int) -> None:
        nonlocal watchdog
        if stop.is_set():
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            task.cancel()
            return
        log.info(
            "%s: stopping (up to %.0f s; send again to stop at once)",
            signal.Signals(signum).name,
            grace_s,
        )
        stop.set()
        watchdog = loop.call_later(grace_s, task.cancel)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await main(stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        if watchdog is not None:
            watchdog.cancel()
