"""``axonlink`` starts fast: the command line loads what a command needs, not the whole server.

Checked by what gets imported (a clock would fail on a busy machine): the server's Flask app,
the cloud storage clients and scipy cost seconds to import, and only serving or reading remote
layers needs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "flask",
    "cloudfiles",
    "cloudvolume",
    "scipy",
    "networkx",
    "google.cloud.storage",
    "boto3",
    "alembic",
    "server.app",
)
# what commands load for their work (the database, the search), and help needs none of
WORK_ONLY = ("sqlalchemy", "numpy", "segmentation.datasets", "segmentation.celltypes", "segmentation.graph")


def imported_after(code: str, tmp_path) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n' + __import__('json').dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("command", [["--help"], ["search", "--help"]])
def test_help_loads_no_heavy_module(tmp_path, command):
    """Help needs the parser only: not even SQLAlchemy, numpy or the cell-type search behind ``search``."""
    modules = imported_after(
        f"import server.cli\ntry:\n    server.cli.main({command!r})\nexcept SystemExit:\n    pass", tmp_path
    )
    assert not {name for name in HEAVY + WORK_ONLY if name in modules}


def test_listing_datasets_of_an_up_to_date_home_loads_no_server_or_migrations(tmp_path):
    home = tmp_path / "home"
    from server.cli import main

    assert main(["datasets", "--home", str(home)]) == 0  # the first run creates the database
    modules = imported_after(f"import server.cli\nserver.cli.main(['datasets', '--home', {str(home)!r}])", tmp_path)
    assert not {name for name in HEAVY if name in modules}


def test_the_newest_migration_is_known_without_alembic():
    from segmentation import db

    assert db._newest_shipped_revision() == db.head_revision()
