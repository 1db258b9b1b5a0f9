"""Random factories: the agent against no control, a classic limiter and the bound, on
factories nobody here wrote (simulators/generator.py), one day each, in-process.

    .venv/bin/python bench/random_factories.py --count 50 --first-seed 1 --jobs 2
    .venv/bin/python bench/random_factories.py --count 12 --json-only

For each seed: the factory drawn and its limit calibrated on its uncontrolled day, the day
run in-process (the same agent code, no sockets) under no control, the classic limiter and
the agent, scored on the plant's ground truth beside the perfect-hindsight bound. The
baselines are measured in the same run, on the same plant and seed. One table row per
factory, then the totals, then one JSON line with everything. Exit code 1 if any factory
fails "never worse than no control" (simulators/random_days.py says what that is).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulators.generator import POLL_INTERVAL_S
from simulators.random_days import judge, table, totals


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50, help="factories (default 50)")
    parser.add_argument("--first-seed", type=int, default=1, help="the first seed (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    parser.add_argument(
        "--poll-interval-s",
        type=float,
        default=POLL_INTERVAL_S,
        help=f"the agent's poll and the plant's step, s (default {POLL_INTERVAL_S:g})",
    )
    parser.add_argument("--json-only", action="store_true", help="only the JSON line")
    return parser.parse_args()


def _describe(rows: list[dict[str, Any]], summary: dict[str, Any], wall_s: float) -> str:
    return "\n".join(
        [
            f"passed {summary['passed']} of {summary['factories']} "
            "(never worse than no control; zero hard violations; the bound never beaten)",
            f"where the bound saves > 0.5 % ({summary['bound_saves_over_half_pct']} factories): "
            f"the agent's mean share of its saving {_pct(summary['mean_share_of_bound'])} "
            f"(the classic limiter's {_pct(summary['limiter_mean_share_of_bound'])}), "
            f"half of it or more in {_pct(summary['reaching_half_of_bound'])} of them",
            "the agent's saving over all factories as a share of the bound's: "
            + _pct(summary["share_of_total_bound_saving"]),
            f"wall time {wall_s:.0f} s, {summary['wall_s_per_factory']} s a factory "
            f"(one process), {len(rows)} factories",
        ]
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _stdout_to_stderr() -> None:
    """In a worker: whatever the solver prints goes to stderr, so that stdout is the table
    and the JSON line alone."""
    os.dup2(2, 1)


def main() -> int:
    args = _arguments()
    seeds = list(range(args.first_seed, args.first_seed + args.count))
    started = time.monotonic()
    with ProcessPoolExecutor(
        max_workers=args.jobs, mp_context=get_context("spawn"), initializer=_stdout_to_stderr
    ) as pool:
        pending = [pool.submit(judge, seed, args.poll_interval_s) for seed in seeds]
        rows = []
        for done in as_completed(pending):
            rows.append(done.result())
            last = rows[-1]
            print(
                f"{len(rows)}/{len(seeds)} seed {last['seed']} {last['factory']}: "
                f"{'FAIL' if last['failures'] else 'PASS'} in {last['wall_s']['total']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        rows.sort(key=lambda r: int(r["seed"]))
    wall_s = time.monotonic() - started
    summary = totals(rows)
    if not args.json_only:
        print(table(rows))
        print()
        print(_describe(rows, summary, wall_s))
    print(
        json.dumps(
            {
                "bench": "random_factories",
                "seeds": [seeds[0], seeds[-1]] if seeds else [],
                "poll_interval_s": args.poll_interval_s,
                "jobs": args.jobs,
                "wall_s": round(wall_s, 1),
                "totals": summary,
                "factories": rows,
            },
            sort_keys=True,
        )
    )
    return 0 if summary["passed"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
