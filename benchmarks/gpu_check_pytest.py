"""pytest plugin of ``make gpu-check``: one JSON line per test report, written as the run goes.

Loaded with ``-p gpu_check_pytest`` (``benchmarks/`` on ``PYTHONPATH``); the file is named by the
environment variable ``GPU_CHECK_PYTEST_LOG``. Lines are flushed one by one, so a run killed by its
timeout still leaves every finished test on disk, and a ``start`` line without a report names a
test that was running. Works with pytest-xdist (``-n 8``): only the controller writes. Line kinds::

    {"event": "start", "nodeid": ...}
    {"event": "report", "nodeid": ..., "when": "setup"|"call"|"teardown", "outcome": ...,
     "duration": s, "wasxfail": bool, "message": "one line"}
    {"event": "collect_error", "nodeid": ..., "message": ...}
    {"event": "finish", "exitstatus": int}
"""

from __future__ import annotations

import json
import os

_FILE = None
_ENABLED = True


def pytest_configure(config):
    global _ENABLED
    # under pytest-xdist the controller receives every worker's reports: only it writes
    _ENABLED = not hasattr(config, "workerinput")


def _emit(record: dict) -> None:
    global _FILE
    path = os.environ.get("GPU_CHECK_PYTEST_LOG")
    if not path or not _ENABLED:
        return
    if _FILE is None:
        _FILE = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the whole session
    _FILE.write(json.dumps(record) + "\n")
    _FILE.flush()


def _message(report) -> str:
    """The one-line reason of a failure or skip (``reprcrash`` when pytest has one)."""
    longrepr = getattr(report, "longrepr", None)
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (file, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    message = str(getattr(crash, "message", "") or "").strip()
    if message:
        return message.splitlines()[0][:300]
    text = str(longrepr).strip().splitlines()
    return text[-1][:300] if text else ""


def pytest_runtest_logstart(nodeid, location):
    _emit({"event": "start", "nodeid": nodeid})


def pytest_runtest_logreport(report):
    _emit({"event": "report", "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
           "duration": round(float(getattr(report, "duration", 0.0)), 4),
           "wasxfail": hasattr(report, "wasxfail"), "message": _message(report)})


def pytest_collectreport(report):
    if report.failed:
        _emit({"event": "collect_error", "nodeid": report.nodeid or "<collection>", "message": _message(report)})


def pytest_sessionfinish(session, exitstatus):
    _emit({"event": "finish", "exitstatus": int(exitstatus)})
