"""Process lifecycle: signals only set a flag; stop is graceful, bounded, then forced.

The first SIGINT / SIGTERM sets `stop`, and the agent winds down in order. If it has not
finished after `grace_s`, or a second signal arrives, the main task is cancelled, which
every task handles with bounded cleanup. SIGHUP, where the platform has it, only sets the
`reload` event it is given; the agent re-reads its site file in its own task group.
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
    main: Callable[[asyncio.Event], Awaitable[None]],
    *,
    grace_s: float = 10.0,
    reload: asyncio.Event | None = None,
) -> None:
    """Run `main(stop)` until it returns; SIGINT / SIGTERM set `stop`, SIGHUP sets `reload`."""
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

    def on_hangup(event: asyncio.Event) -> None:
        if stop.is_set():
            log.info("SIGHUP while stopping: not reloading")
            return
        log.info("SIGHUP: reloading the site file")
        event.set()

    handled = [signal.SIGINT, signal.SIGTERM]
    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    hangup = getattr(signal, "SIGHUP", None)  # not on Windows: no reload by signal there
    if reload is not None and hangup is not None:
        loop.add_signal_handler(hangup, on_hangup, reload)
        handled.append(hangup)
    try:
        await main(stop)
    finally:
        for signum in handled:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        if watchdog is not None:
            watchdog.cancel()
