"""The durable outbox: summaries on disk until the broker has them.

SQLite in WAL mode. A summary is committed before `put` returns and deleted only when the
publisher acknowledges it after the broker's PUBACK, so a broker outage, a lost link, or the
agent killed (SIGKILL, a crash, a reboot) loses nothing that was put: the next run sends the
backlog, oldest first. The per-agent summary sequence lives in the same file, so numbers
continue across restarts and a subscriber can drop a number it has seen; so does the record
of the last interval summarised, written in the same transaction as its summaries (with
their sequence numbers), so that the next run knows, even after a SIGKILL, which intervals
no process summarised.

Durability (`fsync`): `normal` (the default) commits survive a crash or kill of the agent;
after a power cut the last commits before it may be rolled back (the file stays intact).
`full` fsyncs every commit, which survives a power cut too, at a few milliseconds per
summary on an SD card. The outbox is bounded: past `max_messages`, or older than
`max_age_s`, the oldest are dropped, counted, and reported in the next summary.

Calls run in a worker thread, one at a time, so a slow disk never stalls the poll loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from edge_agent.clock import Clock, SystemClock

from .outbox import Message, Payload, Summarised

__all__ = ["SqliteOutbox"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('next_seq', 1), ('dropped', 0);
CREATE TABLE IF NOT EXISTS summarised (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    interval_end REAL NOT NULL,
    state TEXT NOT NULL
);
"""


class SqliteOutbox:
    def __init__(
        self,
        path: Path,
        *,
        max_messages: int = 100_000,
        max_age_s: float = 30 * 86400,
        fsync: Literal["normal", "full"] = "normal",
        clock: Clock | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        """Stamps each message's `created` (see `Outbox.clock`)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync == 'full' else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        self._max, self._max_age_s = max_messages, max_age_s
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._empty = asyncio.Event()
        self._depth = self._count()
        self._oldest = self._oldest_row()
        if not self._depth:
            self._empty.set()

    def close(self) -> None:
        self._db.close()

    async def _run(self, sql_work: Callable[..., T], *args: object) -> T:
        """Run in a worker thread, one at a time. A caller cancelled meanwhile (the publisher
        stopping while it waits to take) must not let the next call start on the same
        connection while the thread is still inside its transaction: the lock is held until
        the thread is done."""
        async with self._lock:
            work = asyncio.ensure_future(asyncio.to_thread(sql_work, *args))
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await work
                raise

    def _count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def _oldest_row(self) -> float | None:
        """Kept beside `_depth`, in the worker, so the metrics never touch the connection."""
        row = self._db.execute("SELECT created FROM messages ORDER BY id LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    # -- the Outbox interface ---------------------------------------------------------

    async def put(self, topic: str, payload: bytes) -> None:
        await self._run(self._put, topic, payload, self.clock.now().timestamp())
        self._empty.clear()
        self._changed.set()

    def _put(self, topic: str, payload: bytes, created: float) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._insert([(topic, payload)], created)

    def _insert(self, messages: Sequence[tuple[str, bytes]], created: float) -> None:
        """Inside a transaction: store, then hold the bound."""
        self._db.executemany(
            "INSERT INTO messages (topic, payload, created) VALUES (?, ?, ?)",
            [(topic, payload, created) for topic, payload in messages],
        )
        over = self._count() - self._max
        if over > 0:
            self._drop("SELECT id FROM messages ORDER BY id LIMIT ?", (over,))
        self._depth = self._count()
        self._oldest = self._oldest_row()

    def _drop(self, select: str, args: tuple[object, ...]) -> None:
        doomed = [row[0] for row in self._db.execute(select, args)]
        if doomed:
            self._db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in doomed])
            self._db.execute(
                "UPDATE counters SET value = value + ? WHERE name = 'dropped'", (len(doomed),)
            )

    async def take(self, limit: int) -> list[Message]:
        while True:
            rows = await self._run(
                self._take, limit, self.clock.now().timestamp() - self._max_age_s
            )
            if rows:
                return rows
            self._changed.clear()
            await self._changed.wait()

    def _take(self, limit: int, oldest: float) -> list[Message]:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._drop("SELECT id FROM messages WHERE created < ?", (oldest,))
            rows = self._db.execute(
                "SELECT id, topic, payload, created FROM messages ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
            self._depth = self._count()
            self._oldest = self._oldest_row()
        return [Message(i, t, bytes(p), c) for i, t, p, c in rows]

    async def ack(self, ids: Sequence[int]) -> None:
        await self._run(self._ack, list(ids))
        if not self._depth:
            self._empty.set()

    def _ack(self, ids: list[int]) -> None:
        with self._db:
            self._db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])
            self._depth = self._count()
            self._oldest = self._oldest_row()

    def depth(self) -> int:
        return self._depth

    def oldest_created(self) -> float | None:
        return self._oldest

    async def wait_empty(self) -> None:
        await self._empty.wait()

    async def next_seq(self) -> int:
        return await self._run(self._next_seq)

    def _next_seq(self) -> int:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            value = self._db.execute(
                "SELECT value FROM counters WHERE name = 'next_seq'"
            ).fetchone()[0]
            self._db.execute("UPDATE counters SET value = value + 1 WHERE name = 'next_seq'")
        return int(value)

    async def take_dropped(self) -> int:
        """Messages dropped by the bounds since the last call: for the next summary."""
        return await self._run(self._take_dropped)

    def _take_dropped(self) -> int:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            return self._reset_dropped()

    def _reset_dropped(self) -> int:
        value = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()[0]
        self._db.execute("UPDATE counters SET value = 0 WHERE name = 'dropped'")
        return int(value)

    async def put_summaries(
        self, summaries: Sequence[tuple[str, Payload]], *, interval_end: datetime, state: str
    ) -> list[int]:
        seqs = await self._run(
            self._put_summaries,
            list(summaries),
            interval_end.timestamp(),
            state,
            self.clock.now().timestamp(),
        )
        if summaries:
            self._empty.clear()
            self._changed.set()
        return seqs

    def _put_summaries(
        self, summaries: list[tuple[str, Payload]], interval_end: float, state: str, created: float
    ) -> list[int]:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            first = int(
                self._db.execute("SELECT value FROM counters WHERE name = 'next_seq'").fetchone()[0]
            )
            dropped = self._reset_dropped()
            seqs = list(range(first, first + len(summaries)))
            self._insert(
                [(topic, make(seq, dropped)) for seq, (topic, make) in enumerate(summaries, first)],
                created,
            )
            self._db.execute(
                "UPDATE counters SET value = ? WHERE name = 'next_seq'", (first + len(seqs),)
            )
            self._db.execute(
                "INSERT INTO summarised VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "interval_end = excluded.interval_end, state = excluded.state",
                (interval_end, state),
            )
        return seqs

    async def last_summarised(self) -> Summarised | None:
        return await self._run(self._last_summarised)

    def _last_summarised(self) -> Summarised | None:
        row = self._db.execute("SELECT interval_end, state FROM summarised").fetchone()
        if row is None:
            return None
        return Summarised(datetime.fromtimestamp(float(row[0]), UTC), str(row[1]))
