"""What the ``axonlink`` command modules share: the error a command stops with, who a change is
audited as, the dataset registry, and asking before something that cannot be undone.

:mod:`server.cli` builds the parser from :mod:`server.cli_access`, :mod:`server.cli_graph` and
:mod:`server.cli_check`; they import from here, never from ``server.cli`` (no import cycle).
Standard library only at import time: every command, ``--help`` too, loads this module.
"""

from __future__ import annotations

import getpass
import sys


class UserError(Exception):
    """A command cannot do what was asked: ``axonlink: error: <message>``, exit status 1."""


def user_error(error) -> UserError:
    return UserError(str(error))


def actor() -> dict:
    """Who changes made from the shell are audited as: ``cli:<login name>``, from ``cli``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return {"by": f"cli:{name}", "origin": "cli"}


def dataset_registry(settings):
    """The dataset registry, on a database brought up to the newest schema."""
    from segmentation import db
    from segmentation.datasets import Datasets

    db.upgrade(settings.database_url)
    return Datasets(settings.database_url)


def confirm_by_name(name: str, question: str, *, unconfirmed: str, declined: str) -> None:
    """Ask ``question`` and have ``name`` typed to go on. Without a terminal to ask on, UserError
    ``unconfirmed`` (it says to confirm with --yes); another answer, UserError ``declined``."""
    if not sys.stdin.isatty():
        raise UserError(unconfirmed)
    answer = input(f"{question} Type the name to confirm: ")
    if answer.strip() != name:
        raise UserError(declined)
