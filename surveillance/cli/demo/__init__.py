"""The end-to-end demo behind ``surveillance demo``: one real day through the whole service.

``run_demo(DemoOptions(...))`` starts the embedded broker (tansu, memory storage), creates the
topics, starts a worker (``python -m surveillance.cli worker`` as a subprocess, so it is the
same program as in production), publishes the day (optionally with a manipulation campaign
injected) at an accelerated speed, waits until every window is decided, stops the worker with a
bounded wait, reads the alert topic back and cross-checks it with the SQL store, and stops the
broker. Everything it started is stopped in ``finally`` blocks (SIGTERM, bounded wait, SIGKILL).
``format_summary`` renders the ``DemoReport`` for a person.
"""

from surveillance.cli.demo.base import DEFAULT_DAY, ROOT, DemoError, DemoOptions, DemoReport
from surveillance.cli.demo.day import inject_campaign, load_day
from surveillance.cli.demo.run import choose_generator, run_demo, scorer_processes
from surveillance.cli.demo.summary import format_summary, scoring_line
from surveillance.cli.demo.watch import (
    STATE_PATH,
    StallTimer,
    _get_state,
    read_alert_topic,
    wait_for_state,
)

__all__ = [
    "DEFAULT_DAY",
    "ROOT",
    "STATE_PATH",
    "DemoError",
    "DemoOptions",
    "DemoReport",
    "StallTimer",
    "_get_state",
    "choose_generator",
    "format_summary",
    "inject_campaign",
    "load_day",
    "read_alert_topic",
    "run_demo",
    "scorer_processes",
    "scoring_line",
    "wait_for_state",
]
