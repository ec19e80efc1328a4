"""The fault-injection tests (`@pytest.mark.chaos`) in one bounded run, printed as a table: fault, what was
checked, result.

    make chaos                              # = python -m bench.chaos
    python -m bench.chaos --budget-s 300    # stop (and report TIMEOUT rows) after 300 s
    python -m bench.chaos -k redis          # extra arguments go to pytest

Every fault is injected on this machine against loopback services (a local Ray cluster, redis-server,
PostgreSQL, the FAKE metering proxy); nothing leaves it. pytest runs in a child process so that the
budget holds even if a test hangs: at the deadline it is interrupted (fixtures tear down: the Ray
cluster, the servers), then killed. Each test's row comes from its docstring,
`fault: ...; checked: ...`, or its name and first docstring line. Exit code 0 only when every row passed.

This module is also the pytest plugin (`-p bench.chaos`) that records the rows for the table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from core.errors import run_cli

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 570  # `make chaos` stays under 10 minutes, start and teardown included
_REPORT_ENV = "SEEDLOOP_CHAOS_REPORT"

# --- the pytest plugin (runs inside the child pytest) -------------------------------------------------

_rows: dict[str, dict[str, Any]] = {}


def _describe(item: Any) -> tuple[str, str]:
    """(fault, what was checked) from the test's docstring, or its name and first docstring line."""
    doc = " ".join((getattr(item.function, "__doc__", None) or "").split())
    if doc.startswith("fault:") and "checked:" in doc:
        fault, checked = doc[len("fault:"):].split("checked:", 1)
        return fault.strip().rstrip(";").strip(), checked.strip()
    return item.name.removeprefix("test_").replace("_", " "), doc.split(". ")[0] or "-"


def pytest_collection_finish(session: Any) -> None:
    for item in session.items:  # after -m / -k deselection: the tests that will run
        if item.get_closest_marker("chaos") is not None:
            fault, checked = _describe(item)
            _rows[item.nodeid] = {"test": item.nodeid, "fault": fault, "checked": checked, "result": "not run",
                                  "seconds": 0.0}


def pytest_runtest_logreport(report: Any) -> None:
    row = _rows.get(report.nodeid)
    if row is None:
        return
    row["seconds"] += report.duration
    if report.when == "call" or report.outcome != "passed":  # a setup error or skip decides the row
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            row["result"] = f"skipped: {reason.removeprefix('Skipped: ')}"
        elif report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            message = crash.message.splitlines()[0] if crash is not None and crash.message else report.outcome
            row["result"] = ("FAIL" if report.when == "call" else f"ERROR in {report.when}") + f": {message[:160]}"
        elif row["result"] == "not run":
            row["result"] = "pass"
    if report.when == "teardown" and os.environ.get(_REPORT_ENV):
        _write(Path(os.environ[_REPORT_ENV]))


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if os.environ.get(_REPORT_ENV):
        _write(Path(os.environ[_REPORT_ENV]))


def _write(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(list(_rows.values()), indent=1), encoding="utf-8")
    tmp.replace(path)


# --- the runner -----------------------------------------------------------------------------------------


def format_table(rows: list[dict[str, Any]], width: int = 60) -> str:
    """A Markdown table, long cells wrapped onto continuation rows."""
    header = ("fault", "what was checked", "result")
    lines = [f"| {header[0]:<{width}} | {header[1]:<{width}} | {header[2]:<24} |",
             f"|{'-' * (width + 2)}|{'-' * (width + 2)}|{'-' * 26}|"]
    for row in rows:
        result = row["result"] + (f" ({row['seconds']:.0f} s)" if row["result"] == "pass" else "")
        cells = [textwrap.wrap(row["fault"], width) or [""], textwrap.wrap(row["checked"], width) or [""],
                 textwrap.wrap(result, 24) or [""]]
        for i in range(max(map(len, cells))):
            a, b, c = (cell[i] if i < len(cell) else "" for cell in cells)
            lines.append(f"| {a:<{width}} | {b:<{width}} | {c:<24} |")
    return "\n".join(lines)


def run(budget_s: float, pytest_args: list[str]) -> tuple[list[dict[str, Any]], bool]:
    """Run the chaos tests in a child pytest within `budget_s`; (rows, finished in time)."""
    with tempfile.TemporaryDirectory(prefix="chaos") as tmp:
        report = Path(tmp) / "rows.json"
        env = {**os.environ, _REPORT_ENV: str(report), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
               "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench.chaos", "-m", "chaos",
               "-o", f"timeout={int(budget_s)}", *(pytest_args or ["tests"])]
        # Its own process group: at the deadline the whole run (and only it) is interrupted, then killed.
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
        finished = True
        try:
            proc.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            finished = False
            os.killpg(proc.pid, signal.SIGINT)  # pytest tears its fixtures down (Ray cluster, servers)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        rows = json.loads(report.read_text(encoding="utf-8")) if report.exists() else []
    if not finished:
        for row in rows:
            if row["result"] == "not run":
                row["result"] = f"TIMEOUT (budget {budget_s:.0f} s)"
    return rows, finished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="wall-clock bound of the whole run")
    args, pytest_args = parser.parse_known_args(argv)
    start = time.perf_counter()
    rows, finished = run(args.budget_s, pytest_args)
    elapsed = time.perf_counter() - start
    print()
    print(format_table(rows))
    passed = sum(r["result"] == "pass" for r in rows)
    print(f"\nchaos: {passed} of {len(rows)} faults passed in {elapsed:.0f} s (budget {args.budget_s:.0f} s)"
          + ("" if finished else "; stopped at the budget"))
    return 0 if rows and passed == len(rows) and finished else 1


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
