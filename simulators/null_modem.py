"""Two pseudo-terminals wired back to back: a serial line without hardware.

The agent opens one end as its RS-485 adapter, the simulator the other; bytes written to
either come out of the other, through a relay task in the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator

__all__ = ["null_modem"]


@contextlib.asynccontextmanager
async def null_modem() -> AsyncIterator[tuple[str, str]]:
    """Yield the two device paths; the relay stops and the ptys close on exit."""
    loop = asyncio.get_running_loop()
    master_a, slave_a = os.openpty()
    master_b, slave_b = os.openpty()
    for fd in (slave_a, slave_b):
        tty.setraw(fd)
    paths = (os.ttyname(slave_a), os.ttyname(slave_b))

    def relay(source: int, target: int) -> None:
        try:
            data = os.read(source, 4096)
        except OSError:  # the other side closed its end
            return
        with contextlib.suppress(OSError):
            os.write(target, data)

    loop.add_reader(master_a, relay, master_a, master_b)
    loop.add_reader(master_b, relay, master_b, master_a)
    try:
        yield paths
    finally:
        loop.remove_reader(master_a)
        loop.remove_reader(master_b)
        for fd in (master_a, master_b, slave_a, slave_b):
            with contextlib.suppress(OSError):
                os.close(fd)
