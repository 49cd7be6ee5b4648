"""A time budget for one piece of work (a request), checked where that work loops.

Python cannot stop a thread from outside, so long work stops itself: code that may run
long (walking a root's history, a search over many datasets, a minimum cut that falls
back to the whole neuron) calls :func:`check` between steps, and raises
:class:`OverBudget` once the budget set by :func:`time_budget` for the current context
is spent. Outside a budget, :func:`check` does nothing (the CLI and tests run unbounded).
"""

from __future__ import annotations

import contextvars
import time
from contextlib import contextmanager

from .errors import Unavailable

_deadline: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar("deadline", default=None)


class OverBudget(Unavailable):
    """The work took longer than its budget and was stopped (a 503: the worker lives on)."""

    headers = {"Retry-After": "60"}

    def __init__(self, seconds: float):
        super().__init__(
            f"this request needed more than {seconds:g} s of work and was stopped; "
            "ask for less (fewer ids, ?bounds=, a narrower query)"
        )
        self.seconds = seconds


@contextmanager
def time_budget(seconds: float | None):
    """Run the block with at most ``seconds`` of work (None: no budget)."""
    token = _deadline.set(None if seconds is None else (time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def check() -> None:
    """Raise :class:`OverBudget` if the current budget is spent."""
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline[0]:
        raise OverBudget(deadline[1])
