"""The simulate report as a plant manager sees it: opened in headless Chromium.

A short simulated run writes report.html through the real path; the browser must load it
without a JavaScript error, its DOM must hold the table and one SVG plot per factory, and
a screenshot must come out. Without a browser on the machine the test is skipped, saying
how to install one (`./dev test` does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from simulators.park import simulate
from simulators.scenario import Scenario

BROWSER_TIMEOUT_S = 60
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

SHORT = {
    "name": "report-check",
    "park": "binh-duong-1",
    "start": "2026-03-02T16:30:00+07:00",
    "duration_h": 0.5,
    "seed": 5,
    "poll_interval_s": 10,
    "summary_interval_s": 300,
    "factories": [
        {
            "name": "press-shop",
            "base_load_kw": 180,
            "limit_kw": 200,
            "machines": [{"name": "chiller-1", "model": "process-chiller"}],
        },
        {"name": "cold-store", "base_load_kw": 60, "night_share": 0.8},
    ],
    "events": [
        {
            "at": "16:35",
            "kind": "demand_response",
            "id": "dr-1",
            "factory": "press-shop",
            "start": "16:45",
            "duration_min": 10,
            "limit_kw": 180,
        }
    ],
}


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium found (apt-get install chromium; ./dev test installs it when missing)")


def _headless(browser: str, profile: Path, *args: str) -> tuple[str, str]:
    """Run the browser once, bounded; stdout and stderr. Its whole process group is ended
    afterwards, whatever happened: Chromium leaves helper processes behind otherwise."""
    process = subprocess.Popen(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=BROWSER_TIMEOUT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return out, err


def _script_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self.classes: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        for name, value in attrs:
            if name == "class" and value:
                self.classes[f"{tag}.{value}"] = self.classes.get(f"{tag}.{value}", 0) + 1


async def test_the_report_renders_in_a_browser_without_errors(tmp_path: Path) -> None:
    browser = _browser()
    scenario = Scenario.model_validate(SHORT)
    metrics = await simulate(scenario, tmp_path / "out")
    page = (tmp_path / "out" / "report.html").as_uri()

    dom, log = _headless(browser, tmp_path / "profile", "--dump-dom", page)
    assert not _script_errors(log), "\n".join(_script_errors(log))
    elements = _Elements()
    elements.feed(dom)
    # The day, the score, the demand response, and the actions of the factory under control:
    # the first of each kind, and all of them folded.
    assert elements.counts.get("table") == 5
    assert elements.classes.get("details.all-actions") == 1
    assert elements.counts.get("svg") == len(scenario.factories), "one plot per factory"
    for mode in ("agent", "none", "limiter"):
        assert elements.classes.get(f"polyline.run-{mode}") == len(scenario.factories), mode
    bounds = sum(
        "demand_kw" in metrics["score"][f.name].get("hindsight", {}) for f in scenario.factories
    )
    assert elements.classes.get("polyline.run-hindsight", 0) == bounds, "the bound's curve"
    assert elements.classes.get("line.limit") == 1, "the limit of the one factory with one"
    assert elements.classes.get("rect.dr-window") == 1, "the request's window, on its factory"
    assert elements.classes.get("text.y-label") == len(scenario.factories)
    assert elements.classes.get("text.y-tick", 0) >= 4 * len(scenario.factories)
    assert "perfect-hindsight bound" in dom
    assert "shed chiller-1" in dom or "restore chiller-1" in dom, "an action with its reason"
    assert "dr-1" in dom
    for factory in scenario.factories:
        assert factory.name in dom

    shot = tmp_path / "report.png"
    _headless(browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1000,900", page)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000, "a page with a table and plots, not a blank one"


def test_a_script_error_would_be_caught(tmp_path: Path) -> None:
    """The check above can fail: a page that throws is seen as throwing."""
    browser = _browser()
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><title>x</title><script>missing.call()</script>")
    _dom, log = _headless(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert _script_errors(log), log
