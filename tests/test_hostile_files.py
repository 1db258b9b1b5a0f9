"""Hostile site files: each is refused with its place and the reason, never a traceback.

A corpus written into tmp_path (a billion laughs, text in the wrong encoding, control
characters, deep nesting, a 5,000-digit integer, a directory, a named pipe, a symlink loop,
an unreadable file, an oversized file, infinite timeouts) must give a `ConfigError` whose
problem starts with file:line:column and says what was wrong; through the CLI, `check` and
`run` exit 2 and print no traceback; a running agent sent SIGHUP logs the refusal (again on
a second try) and runs on unchanged. Merge keys, which used to end in a KeyError, work.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.modbus.config import ModbusPoint, ModbusTcpDevice
from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.config.loader import ConfigError, load_site
from edge_agent.config.located import MAX_FILE_BYTES, read_yaml
from edge_agent.northbound.outbox import MemoryOutbox
from edge_agent.ops.logs import RepeatFilter
from tests.test_reload import SITE, hangup, meters, supervised

ROOT = Path(__file__).resolve().parents[1]

VALID = """\
site: {name: press-shop, park: test-park}
devices:
  - {name: m1, driver: modbus-tcp, model: eastron-sdm630, host: 10.0.0.5}
"""


def billion_laughs() -> str:
    """342 bytes: nine anchors, each of nine aliases of the one before, 9**9 values."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def write_text(text: str) -> Callable[[Path], object]:
    return lambda path: path.write_text(text, encoding="utf-8")


def write_bytes(data: bytes) -> Callable[[Path], object]:
    return lambda path: path.write_bytes(data)


def modbus_tcp(device: object) -> ModbusTcpDevice:
    assert isinstance(device, ModbusTcpDevice)
    return device


def modbus_point(point: object) -> ModbusPoint:
    assert isinstance(point, ModbusPoint)
    return point


def symlink_loop(path: Path) -> None:
    other = path.with_name("other.yaml")
    os.symlink(other.name, path)
    os.symlink(path.name, other)


def unreadable(path: Path) -> None:
    path.write_text(VALID)
    path.chmod(0)


def with_device(extra: str) -> str:
    return VALID.replace("host: 10.0.0.5}", f"host: 10.0.0.5, {extra}}}")


@dataclass(frozen=True)
class Case:
    id: str
    write: Callable[[Path], object]
    where: str
    """Line and column as a regex, e.g. `1:17` or `\\d+:\\d+`."""
    words: tuple[str, ...]
    needs: str | None = None
    """Why the case cannot run here, if it cannot."""


NOT_ROOT = "root reads any file" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
NO_FIFO = None if hasattr(os, "mkfifo") else "no named pipes on this platform"

CASES = [
    Case("billion-laughs", write_text(billion_laughs()), r"6:8", ("aliases expand", "100,000")),
    Case(
        "latin-1",
        write_bytes("site: {name: café, park: p}\n".encode("latin-1")),
        "1:17",
        ("not UTF-8", "0xE9", "save it as UTF-8"),
    ),
    Case(
        "utf-16",
        write_bytes(VALID.encode("utf-16")),
        "1:1",
        ("UTF-16 text", "byte order mark FF FE"),
    ),
    Case(
        "utf-16-without-bom",
        write_bytes(VALID.encode("utf-16-le")),
        "1:2",
        ("U+0000 (NUL)", "UTF-16"),
    ),
    Case(
        "binary",
        write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        "1:1",
        ("not UTF-8", "0x89", "binary"),
    ),
    Case(
        "nul",
        write_bytes(VALID.encode().replace(b"press-shop", b"press\x00shop")),
        "1:19",
        ("U+0000 (NUL)", "not allowed in YAML"),
    ),
    Case(
        "escape",
        write_bytes(VALID.encode().replace(b"test-park", b"\x1b[31mtest-park")),
        "1:32",
        ("U+001B (ESC)", "not allowed in YAML"),
    ),
    Case("deep-flow", write_text("site: " + "[" * 10_000 + "]" * 10_000 + "\n"), "1:56", ("50",)),
    Case(
        "deep-block",
        write_text("".join("  " * i + f"k{i}:\n" for i in range(300))),
        "50:99",
        ("nested deeper than 50 levels",),
    ),
    Case(
        "alias-chain",
        write_text("a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 99))),
        r"\d+:\d+",
        ("nests the document deeper than 50 levels",),
    ),
    Case(
        "recursive-alias",
        write_text("site: &s {name: a, park: b, again: *s}\n"),
        "1:36",
        ("inside its own anchor",),
    ),
    Case(
        "huge-integer",
        write_text(VALID + "broker: {port: " + "9" * 5000 + "}\n"),
        "4:16",
        ("5,000 digits", "too long"),
    ),
    Case("directory", lambda path: path.mkdir(), "1:1", ("is a directory",)),
    Case(
        "fifo",
        os.mkfifo,
        "1:1",
        ("named pipe (FIFO)", "not a regular file"),
        needs=NO_FIFO,
    ),
    Case("symlink-loop", symlink_loop, "1:1", ("symlink loop",)),
    Case("missing", lambda path: None, "1:1", ("no such file",)),
    Case(
        "dangling-symlink",
        lambda path: os.symlink("gone.yaml", path),
        "1:1",
        ("no such file", "symlink to gone.yaml"),
    ),
    Case("unreadable", unreadable, "1:1", ("permission denied",), needs=NOT_ROOT),
    Case(
        "oversized",
        write_text(("# " + "x" * 77 + "\n") * (5 * MAX_FILE_BYTES // 80)),
        "1:1",
        ("5,242,880 bytes", "at most 1,048,576 bytes (1 MiB)"),
    ),
    Case(
        "infinite-timeout",
        write_text(with_device("timeout_s: .inf")),
        "3:86",
        ("devices[m1].timeout_s", "expected a finite number", "found inf"),
    ),
    Case(
        "huge-timeout",
        write_text(with_device("timeout_s: 1e300")),
        "3:86",
        ("devices[m1].timeout_s", "less than or equal to 86400 s (a day)", "found 1e+300"),
    ),
    Case(
        "nan-staleness",
        write_text(with_device("stale_after_s: .nan")),
        "3:90",
        ("devices[m1].stale_after_s", "expected a finite number", "found nan"),
    ),
    Case(
        "infinite-backoff",
        write_text(VALID + "broker: {reconnect_max_s: .inf}\n"),
        "4:27",
        ("broker.reconnect_max_s", "expected a finite number"),
    ),
    Case(
        "opc-ua-interval",
        write_text(
            VALID + "  - {name: o1, driver: opcua, endpoint: 'opc.tcp://plc', poll_interval_s: "
            "1e999, points: {p: {node_id: 'ns=2;s=P'}}}\n"
        ),
        "4:75",
        ("devices[o1].poll_interval_s", "expected a finite number"),
    ),
    Case(
        "custom-tag",
        write_text(VALID + "broker: {host: !vault broker-host}\n"),
        "4:16",
        ("invalid YAML", "tag '!vault'"),
    ),
    Case(
        "duplicate-key",
        write_text(VALID + "site: {name: again, park: test-park}\n"),
        "4:1",
        ("duplicate key 'site'", "first written at line 1"),
    ),
]


def runnable(cases: list[Case]) -> list[object]:
    return [
        pytest.param(c, id=c.id, marks=[pytest.mark.skip(reason=c.needs)] if c.needs else [])
        for c in cases
    ]


@pytest.mark.parametrize("case", runnable(CASES))
def test_refused_with_its_place_and_the_reason(case: Case, tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    case.write(site)
    with pytest.raises(ConfigError) as caught:
        load_site(site, environ={})
    located = [
        str(p)
        for p in caught.value.problems
        if re.match(rf"{re.escape(str(site))}:\d+:\d+: ", str(p))
    ]
    assert located, caught.value.problems
    assert any(
        re.match(rf"{re.escape(str(site))}:{case.where}: ", line)
        and all(word in line for word in case.words)
        for line in located
    ), "\n".join(located)


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize("case", runnable(CASES))
def test_the_cli_exits_2_with_the_place_and_no_traceback(
    case: Case, command: str, tmp_path: Path
) -> None:
    site = tmp_path / "site.yaml"
    case.write(site)
    args = [command, str(site)] + (["--no-publish"] if command == "run" else [])
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert re.search(rf"{re.escape(str(site))}:{case.where}: ", output), output
    assert all(word in output for word in case.words), output


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB and RLIMIT_AS: Linux")
def test_a_billion_laughs_is_refused_without_the_memory(tmp_path: Path) -> None:
    """The old reader expanded every alias again: minutes and gigabytes, then MemoryError.

    `edge-agent check` runs as a grandchild: a small Python process starts it and reads its
    peak with getrusage(RUSAGE_CHILDREN), since Linux carries the RSS of the process that
    forks (here pytest, hundreds of MB after other tests) into the child's ru_maxrss. An
    address-space limit makes a regression fail here instead of swapping the machine."""
    site = tmp_path / "laughs.yaml"
    site.write_text(billion_laughs())
    assert len(billion_laughs()) == 342
    check = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from edge_agent.cli import main\n"
        "sys.exit(main(['check', sys.argv[1]]))\n"
    )
    measure = (
        "import resource, subprocess, sys\n"
        "code = subprocess.run([sys.executable, '-c', sys.argv[1], sys.argv[2]]).returncode\n"
        "print('peak_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", measure, check, str(site)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "aliases expand the document to more than 100,000 values" in result.stderr
    assert "Traceback" not in result.stderr
    [peak] = re.findall(r"^peak_kib (\d+)$", result.stdout, re.MULTILINE)
    assert int(peak) < 200 * 1024, f"peak {int(peak) // 1024} MiB"


def test_thousands_of_problems_print_the_first_two_hundred(tmp_path: Path) -> None:
    """70,000 unknown keys printed 13 MB; the exception still holds every one."""
    site = tmp_path / "site.yaml"
    site.write_text(VALID + "".join(f"k{i}: 1\n" for i in range(70_000)))
    with pytest.raises(ConfigError) as caught:
        load_site(site, environ={})
    assert len(caught.value.problems) == 70_000
    text = str(caught.value)
    lines = text.splitlines()
    assert lines[0] == "70,000 problems in the configuration:"
    assert len(lines) == 1 + ConfigError.SHOWN + 1
    assert lines[-1] == "  ... and 69,800 more problems"
    assert lines[1].startswith(f"  {site}:4:1: k0: unknown field 'k0'")
    assert len(text) < 100_000


def test_a_few_problems_print_them_all(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(VALID + "k1: 1\nk2: 2\n")
    with pytest.raises(ConfigError) as caught:
        load_site(site, environ={})
    assert "more problem" not in str(caught.value)
    assert str(caught.value).count("unknown field") == 2


MERGED = """\
site: {name: press-shop, park: test-park}
devices:
  - &meter {name: m1, driver: modbus-tcp, model: eastron-sdm630, host: 10.0.0.5, timeout_s: 2}
  - <<: *meter
    name: m2
    host: 10.0.0.6
  - {<<: [{unit: 4, timeout_s: 3}, *meter], name: m3}
"""


def test_merge_keys_work_and_the_keys_written_win(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(MERGED)
    m1, m2, m3 = map(modbus_tcp, load_site(site).devices)
    assert (m2.name, m2.host, m2.timeout_s, m2.model) == ("m2", "10.0.0.6", 2, "eastron-sdm630")
    assert len(m2.points) == len(m1.points) == 20
    # In a list of merged mappings the earlier wins; the mapping's own keys win over all.
    assert (m3.name, m3.host, m3.unit, m3.timeout_s) == ("m3", "10.0.0.5", 4, 3)


def test_an_error_in_a_merged_key_is_located_where_it_is_written(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(MERGED.replace("timeout_s: 2}", "timeout_s: fast, tiemout: 1}"))
    with pytest.raises(ConfigError) as caught:
        load_site(site, environ={})
    problems = [str(p) for p in caught.value.problems]
    # m1 and m2 (which merges m1) share the value written on line 3; m3's own 3 is fine.
    assert f"{site}:3:93: devices[m1].timeout_s: expected a valid number" in "\n".join(problems)
    assert any(p.startswith(f"{site}:3:93: devices[m2].timeout_s:") for p in problems), problems
    assert any(
        p.startswith(f"{site}:3:99: devices[m2].tiemout: unknown field 'tiemout'") for p in problems
    ), problems
    assert not any("devices[m3].timeout_s" in p for p in problems), problems


def test_a_merge_of_something_else_than_a_mapping_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(VALID + "broker: {<<: [1, 2]}\n")
    with pytest.raises(ConfigError, match=r"site\.yaml:4:15: invalid YAML: a `<<` merge key"):
        load_site(site, environ={})


def test_an_anchor_used_many_times_is_converted_once(tmp_path: Path) -> None:
    """Aliases share the converted value: a hundred uses cost one conversion."""
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "base: &b {points: {" + ", ".join(f"p{i}: {{address: {i}}}" for i in range(100)) + "}}\n"
        "uses: [" + ", ".join(["*b"] * 100) + "]\n"
    )
    doc = read_yaml(path)
    assert all(use is doc.data["base"] for use in doc.data["uses"])
    assert len(doc.values) < 400  # marks where written, not per use of every part
    assert doc.mark_for(("uses", 99, "points", "p5")) == doc.values[("uses", 99)]


def test_devices_sharing_points_by_alias_keep_their_own_point_defaults(tmp_path: Path) -> None:
    """A shared mapping is never changed in place: plc-1's defaults must not reach plc-2."""
    site = tmp_path / "site.yaml"
    site.write_text("""\
site: {name: press-shop, park: test-park}
devices:
  - name: plc-1
    driver: modbus-tcp
    host: 10.0.0.1
    point_defaults: {table: input}
    points: &points {level: {address: 1}}
  - {name: plc-2, driver: modbus-tcp, host: 10.0.0.2, points: *points}
  - name: m1
    driver: modbus-tcp
    model: eastron-sdm630
    host: 10.0.0.3
    points: &over {total_power_kw: {address: 52, scale: 0.001, unit: kW, role: active_power_kw}}
  - {name: m2, driver: modbus-tcp, model: eastron-sdm630, host: 10.0.0.4, points: *over}
""")
    plc1, plc2, m1, m2 = load_site(site).devices
    assert modbus_point(plc1.points["level"]).table.value == "input"
    assert modbus_point(plc2.points["level"]).table.value == "holding"
    assert m1.points == m2.points
    assert len(m2.points) == 20


def test_every_valid_config_in_the_repository_still_loads() -> None:
    sites = sorted((ROOT / "configs" / "sites").glob("*.yaml"))
    assert sites
    for site in sites:
        load_site(site, environ={"MQTT_PASSWORD": "x", "MQTT_USERNAME": "x"})


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


RELOADS = [
    c for c in CASES if c.id in ("billion-laughs", "nul", "fifo", "directory", "huge-timeout")
]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="reload is by SIGHUP")
@pytest.mark.skipif(NO_FIFO is not None, reason=NO_FIFO or "")
async def test_sighup_with_a_hostile_file_is_refused_in_place_twice_and_changes_nothing(
    tmp_path: Path, clock: SimClock
) -> None:
    """Logged through the log's repeat filter, as `edge-agent run` logs: the second refusal
    of one file within the filter's window is logged too, since each names its reload."""
    site = tmp_path / "site.yaml"
    collected = Collected()
    collected.addFilter(RepeatFilter(60.0, monotonic=lambda: 0.0))  # all in one window
    logger = logging.getLogger("edge_agent")
    logger.addHandler(collected)
    try:
        async with meters(clock, 1) as a, meters(clock, 1) as b:
            site.write_text(SITE.format(a=a.port, b=b.port, interval=1))
            agent = Agent(
                load_site(site), clock, outbox=MemoryOutbox(), publish=False, site_file=site
            )
            async with supervised(agent):
                running, pollers = agent.config, list(agent.pollers)
                for case in RELOADS:
                    if site.is_dir() and not site.is_symlink():
                        site.rmdir()
                    else:
                        site.unlink()
                    case.write(site)
                    for _ in range(2):
                        collected.messages.clear()
                        await hangup(agent)
                        attempt = agent.reloads_tried
                        assert agent.last_reload is None, case.id
                        assert agent.config is running
                        assert agent.pollers == pollers
                        where = (
                            rf"^reload #{attempt} refused: {re.escape(str(site))}:{case.where}: "
                        )
                        assert any(
                            re.match(where, m) and all(w in m for w in case.words)
                            for m in collected.messages
                        ), (case.id, collected.messages)
                        assert collected.messages[-1].endswith("kept the running configuration")
                await clock.advance(3)
                assert all(p.stats.devices[d].polls > 0 for p in pollers for d in p.stats.devices)
    finally:
        logger.removeHandler(collected)
