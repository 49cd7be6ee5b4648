"""A counter on this machine that every edit of a graph raises after its commit.

Why: a graph read here is current once it has replayed every operation the database holds, and
finding that out costs a query (``Graph.sync``), a few hundred microseconds, on every request that
reads the graph. The requests a viewer fires by the hundred (live chunks) are answered in well under
that from memory. Every edit made on this machine raises this counter after committing, so a reader
on this machine knows without SQL that it is behind (then it asks the database, as before) or that no
edit was made here since it last read. Edits made on other machines are not counted here: readers
learn of them from the background follower (``registry.follow``, every few tens of milliseconds), as
every read learns of them today through the database.

The counter is eight bytes in a file under a directory of this user's (mode 0700) in the temporary
directory, one per graph (database, dataset and ingest time); readers map it and compare it with the
operation they have read up to. Writers take the file's lock and write the larger of the two values,
so the counter never goes back. Anything that fails here (no such directory, no permission) only
makes readers ask the database, as without it.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
import threading
from datetime import datetime

from sqlalchemy.engine import make_url

_SIZE = 8
_FORMAT = "<q"
UNKNOWN = -1  # the counter cannot be read: readers must ask the database


def _directory() -> str:
    path = os.path.join(tempfile.gettempdir(), f"axonlink-edits-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    status = os.stat(path)
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise PermissionError(f"{path} is not this user's alone")
    return path


class EditSignal:
    """The counter of one graph (see the module docstring)."""

    def __init__(self, database_url: str, dataset_id: int, created_at: datetime):
        where = make_url(database_url).render_as_string(hide_password=True)
        digest = hashlib.sha256(f"{where}\n{dataset_id}\n{created_at.isoformat()}".encode()).hexdigest()[:32]
        self.name = f"{digest}.seq"
        self._map: mmap.mmap | None = None
        self._failed = False
        self._lock = threading.Lock()

    def _open(self) -> int:
        fd = os.open(os.path.join(_directory(), self.name), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size < _SIZE:
                os.pwrite(fd, struct.pack(_FORMAT, 0), 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self) -> int:
        """The newest operation an edit on this machine committed (UNKNOWN if it cannot be read)."""
        found = self._map
        if found is None:
            found = self._mapped()
            if found is None:
                return UNKNOWN
        return struct.unpack_from(_FORMAT, found)[0]

    def _mapped(self) -> mmap.mmap | None:
        with self._lock:
            if self._map is None and not self._failed:
                try:
                    fd = self._open()
                    try:
                        self._map = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
                    finally:
                        os.close(fd)
                except (OSError, ValueError):
                    self._failed = True
            return self._map

    def raise_to(self, seq: int) -> None:
        """After committing operation ``seq``: the counter becomes at least ``seq``."""
        try:
            fd = self._open()
        except (OSError, ValueError):
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = struct.unpack(_FORMAT, os.pread(fd, _SIZE, 0))[0]
            if seq > current:
                os.pwrite(fd, struct.pack(_FORMAT, seq), 0)
        except OSError:
            pass
        finally:
            os.close(fd)
