"""Small files read recently, kept in memory while their ``stat`` says they are the file read.

A stored chunk answered by the server's poller cost four system calls (stat, open, read, close)
of about ten per request, with the file in the page cache anyway. Keeping the bytes of small
files, checked against the file's identity (size, modification and change times, inode, device)
from the ``stat`` the lookup makes anyway, leaves one. A file rewritten in place or replaced is
read again (its change time or inode differs). Bounded by :data:`MAX_BYTES` per process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

MAX_BYTES = 64 * 1024 * 1024  # per process (each server worker has its own)
MAX_OBJECT = 1024 * 1024  # larger files are read each time


class FileMemory:
    """``name -> (value, identity, size)``, least recently used first out."""

    def __init__(self, max_bytes: int = MAX_BYTES, max_object: int = MAX_OBJECT):
        self.max_bytes = max_bytes
        self.max_object = max_object
        self._entries: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def confirmed(self, name, identity):
        """The value kept for ``name`` if it was read from the file ``identity`` describes, else None."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry[1] != identity:
                return None
            self._entries.move_to_end(name)
            return entry[0]

    def keep(self, name, value, identity, size: int) -> None:
        if size > self.max_object:
            return
        with self._lock:
            old = self._entries.pop(name, None)
            if old is not None:
                self._bytes -= old[2]
            self._entries[name] = (value, identity, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped[2]

    @property
    def bytes(self) -> int:
        return self._bytes


FILES = FileMemory()
