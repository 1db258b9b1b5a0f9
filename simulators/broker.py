"""An MQTT broker on loopback for the demo and the tests: Mosquitto, or amqtt as a fallback.

Mosquitto (Debian's package) is the broker the tests use; the demo falls back to the
pure-Python amqtt only where Mosquitto is not installed. Either listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import getpass
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["BrokerUnavailable", "MosquittoBroker", "find_mosquitto", "is_listening"]

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM when the process that started us
    dies, even by SIGKILL, so a killed demo leaves no broker holding its port."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class BrokerUnavailable(Exception):
    pass


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if Path(candidate).is_file():
            return candidate
    return None


async def is_listening(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True if something accepts TCP connections at host:port."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class MosquittoBroker:
    """A Mosquitto process on 127.0.0.1:`port`; `stop()` and `start()` again for outages.

    `max_queued_messages 0` lifts Mosquitto's default cap of 1,000 queued QoS 1 messages per
    client, which would otherwise drop messages for a slow subscriber in a zero-loss test.
    """

    def __init__(self, port: int, *, extra_config: str = "", anonymous: bool = True) -> None:
        self.port = port
        self._extra = extra_config
        self._anonymous = anonymous
        self._process: asyncio.subprocess.Process | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="mosquitto-")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        self._dir.cleanup()

    async def start(self) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerUnavailable("mosquitto is not installed (apt-get install mosquitto)")
        conf = Path(self._dir.name) / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'true' if self._anonymous else 'false'}\n"
            # Run as whoever started it: as root, Mosquitto would otherwise switch to its own
            # user, which cannot read certificates and password files in a private folder.
            f"user {getpass.getuser()}\n"
            "persistence false\n"
            "max_queued_messages 0\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            f"{self._extra}\n",
            encoding="utf-8",
        )
        # A session of its own: Ctrl-C in the terminal goes to the whole foreground process
        # group, and the broker must outlive the agent's goodbye; stop() ends it.
        process = await asyncio.create_subprocess_exec(
            binary,
            "-c",
            str(conf),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._process = process
        assert process.stdout is not None
        seen: list[str] = []
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                while True:
                    line = (await process.stdout.readline()).decode(errors="replace")
                    if not line:
                        raise BrokerUnavailable("mosquitto exited: " + " | ".join(seen))
                    seen.append(line.strip())
                    if " running" in line:
                        break
        except (TimeoutError, BrokerUnavailable):
            await self.stop()
            raise
        self._drain_task = asyncio.create_task(self._discard_output(process), name="mosquitto log")

    @staticmethod
    async def _discard_output(process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while await process.stdout.readline():
            pass

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
        task, self._drain_task = self._drain_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
