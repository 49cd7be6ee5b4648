"""Read and validate an agglomeration file: which supervoxels start joined.

Two kinds of file are understood:

``pairs``
    two label columns; the region-graph edge between each pair starts active.
``bodies``
    a supervoxel → body table (``supervoxel body``), as Raveler/NeuTu and agglomeration
    pipelines write it. Supervoxels with the same body start as one neuron; body 0 means
    "its own neuron", and so does a supervoxel listed under a body no other supervoxel has
    (e.g. mapped to itself). Supervoxels not listed are their own neurons too.

Formats: CSV with or without a header row (a header is a first row whose fields are not all
integers), whitespace-separated text (``#`` starts a comment line), and ``.npy`` (an N×2
integer array). No regular expressions: a text file is first scanned in 16 MiB blocks (line
lengths, blank or comment lines), then parsed by numpy's C parser when every line after the
header is a data line; otherwise (or when that parser refuses a field) it is read line by line
with plain string operations, so every bad line can be named. Lines are read at most 1000
characters at a time; files, rows and fields are capped (:data:`MAX_FILE_BYTES`,
:data:`MAX_ROWS`, :data:`MAX_FIELD_CHARS`). ``.npy`` is memory-mapped, never unpickled.

How the kind is decided with ``kind="auto"`` (the summary says which rule fired):

1. a header whose second column names a body, segment or neuron → bodies; any other header → pairs;
2. no header: bodies when the first column has no repeated value and the second column has a
   repeated value or a 0 (body 0); otherwise pairs.

A pair list can look like a body table (a star 1-5, 2-5, 3-5): pass the kind explicitly then.

Cheap checks (fields, columns, negative values, labels the id layout cannot hold, a supervoxel
listed under two bodies) run here, before any chunk of the volume is read;
:meth:`Agglomeration.check_in_volume` runs once the volume's supervoxels are known.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import fastremap
import numpy as np

from ..errors import Invalid
from .ids import LAYER_SHIFT, SUPERVOXEL_LAYER

MAX_FILE_BYTES = 4 * 2**30  # refuse larger files: a 4 GiB text table is ~200M rows
MAX_ROWS = 200_000_000
MAX_LINE_CHARS = 1000
MAX_FIELD_CHARS = 20  # 2**64 - 1 has 20 digits; a longer field is never parsed as a number
SHOWN = 5  # offending rows named per problem
KINDS = ("auto", "pairs", "bodies")
BODY_WORDS = ("body", "segment", "neuron")
_UINT64_MAX = 2**64 - 1


class AgglomerationError(Invalid):
    """The file cannot be used; the message names the offending rows."""


@dataclass
class Agglomeration:
    """The two columns of an agglomeration file as uint64 arrays, and how they were read."""

    kind: str  # "pairs" or "bodies"
    left: np.ndarray  # pairs: first label; bodies: supervoxel
    right: np.ndarray  # pairs: second label; bodies: body id
    rows: np.ndarray  # where each row came from: 1-based line numbers (text) or row indices (npy)
    source: str = "(given pairs)"
    row_word: str = "row"  # "line" for text files, "row" for npy and arrays
    why: str = ""  # the rule that decided the kind
    header: list[str] = field(default_factory=list)

    @classmethod
    def from_pairs(cls, pairs) -> Agglomeration:
        """Pairs given in code (a list or an (N, 2) array), checked like a file's."""
        array = np.asarray(pairs)
        if array.size == 0:
            array = np.zeros((0, 2), dtype=np.uint64)
        return _from_array(array, "(given pairs)", "pairs", "row", base=0)

    def describe(self) -> str:
        return f"{len(self.left)} {self.kind} row(s) from {self.source} ({self.why})"

    def where(self, mask_or_index) -> str:
        """'line 3, line 7, ... (N in all)' for the rows selected."""
        picked = self.rows[mask_or_index]
        shown = ", ".join(f"{self.row_word} {int(r)}" for r in picked[:SHOWN])
        more = f" … ({len(picked)} in all)" if len(picked) > SHOWN else ""
        return shown + more

    def check_in_volume(self, volume_supervoxels: np.ndarray) -> None:
        """Refuse labels the volume does not have (``volume_supervoxels``: sorted layer-1 ids)."""
        columns = [self.left, self.right] if self.kind == "pairs" else [self.left]
        missing = np.zeros(len(self.left), dtype=bool)
        labels: set[int] = set()
        for column in columns:
            ids = self.supervoxel_ids(column)
            if len(volume_supervoxels):
                pos = np.minimum(np.searchsorted(volume_supervoxels, ids), len(volume_supervoxels) - 1)
                absent = volume_supervoxels[pos] != ids
            else:
                absent = np.ones(len(ids), dtype=bool)
            missing |= absent
            labels.update(int(v) for v in column[absent][:SHOWN])
        if missing.any():
            raise AgglomerationError(
                f"{self.source}: {int(missing.sum())} row(s) name labels that are not in the volume "
                f"({self.where(missing)}; e.g. label(s) {', '.join(map(str, sorted(labels)[:SHOWN]))})"
            )

    @staticmethod
    def supervoxel_ids(labels: np.ndarray) -> np.ndarray:
        """Plain labels get layer 1; labels already in layer 1 stay (the file's check refused others)."""
        labels = np.asarray(labels, dtype=np.uint64)
        return np.where(
            (labels >> np.uint64(LAYER_SHIFT)) == 0, labels | np.uint64(SUPERVOXEL_LAYER << LAYER_SHIFT), labels
        )


def read_agglomeration(
    path: str, kind: str = "auto", *, max_bytes: int | None = None, max_rows: int | None = None
) -> Agglomeration:
    """Read ``path`` (CSV, whitespace text or .npy) as pairs or a body table; raise
    :class:`AgglomerationError` naming the offending rows."""
    if kind not in KINDS:
        raise AgglomerationError(f"agglomeration kind must be one of {', '.join(KINDS)}, not {kind!r}")
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    max_rows = MAX_ROWS if max_rows is None else max_rows
    try:
        size = os.path.getsize(path)
    except OSError as error:
        raise AgglomerationError(f"cannot read agglomeration file {path}: {error.strerror or error}") from None
    if size > max_bytes:
        raise AgglomerationError(
            f"{path} is {size / 2**30:.1f} GiB, more than the {max_bytes / 2**30:.1f} GiB "
            "an agglomeration file may have (split it, or store it as .npy)"
        )
    if str(path).endswith(".npy"):
        return _read_npy(path, kind, max_rows)
    return _read_text(path, kind, max_rows)


def _read_npy(path: str, kind: str, max_rows: int) -> Agglomeration:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise AgglomerationError(f"cannot read {path} as .npy: {error}") from None
    if array.ndim != 2 or array.shape[1] != 2:
        raise AgglomerationError(f"{path} must be an N x 2 array (two columns), found shape {array.shape}")
    if array.shape[0] > max_rows:
        raise AgglomerationError(f"{path} has {array.shape[0]} rows, more than the {max_rows} allowed")
    return _from_array(np.asarray(array), path, kind, "row", base=0)


def _from_array(array: np.ndarray, source: str, kind: str, row_word: str, base: int) -> Agglomeration:
    if array.ndim != 2 or array.shape[1] != 2:
        raise AgglomerationError(f"{source}: pairs must have two columns, found shape {array.shape}")
    rows = np.arange(len(array), dtype=np.int64) + base
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array).all(axis=1)
        bad[~bad] = (np.floor(array[~bad]) != array[~bad]).any(axis=1)
        if bad.any():
            raise AgglomerationError(f"{source}: non-integer values in {_where(rows, bad, row_word)}")
    elif array.dtype.kind not in "iu":
        raise AgglomerationError(f"{source}: labels must be integers, found dtype {array.dtype}")
    if array.dtype.kind in "if":
        negative = (array < 0).any(axis=1)
        if negative.any():
            raise AgglomerationError(f"{source}: negative labels in {_where(rows, negative, row_word)}")
        if array.dtype.kind == "f" and (array > _UINT64_MAX).any():
            big = (array > _UINT64_MAX).any(axis=1)
            raise AgglomerationError(f"{source}: labels beyond 64 bits in {_where(rows, big, row_word)}")
    array = array.astype(np.uint64)
    return _finish(array[:, 0], array[:, 1], rows, source, kind, row_word, header=[])


def _where(rows: np.ndarray, mask, row_word: str) -> str:
    picked = rows[mask]
    shown = ", ".join(f"{row_word} {int(r)}" for r in picked[:SHOWN])
    return shown + (f" … ({len(picked)} in all)" if len(picked) > SHOWN else "")


def _read_text(path: str, kind: str, max_rows: int) -> Agglomeration:
    """A text table: numpy's C parser when every line after the header is a plain data line
    (:func:`_read_regular_text`), else line by line with each bad line named."""
    try:
        found = _read_regular_text(path, kind, max_rows)
    except OSError as error:
        raise AgglomerationError(f"cannot read agglomeration file {path}: {error.strerror or error}") from None
    return found if found is not None else _read_text_by_line(path, kind, max_rows)


_SCAN_BYTES = 16 * 2**20
_IRREGULAR = (b"\n\n", b"\n#", b"\n\r")  # blank or comment lines (others: loadtxt fails or counts differ)


def _read_regular_text(path: str, kind: str, max_rows: int) -> Agglomeration | None:
    """The table through ``np.loadtxt`` (~25 times faster than Python), or None when the file is
    not regular: comments or blank lines after the first data line, an over-long line, a bad
    field. Line numbers are then simply the first data line + the row index."""
    skip, header, delimiter = 0, [], None
    with open(path, "rb") as raw:
        while True:
            start = raw.tell()
            line = raw.readline(MAX_LINE_CHARS + 1)
            if not line or len(line) > MAX_LINE_CHARS:
                return None  # no data line, or an over-long one: the slow path says which
            text = line.decode("utf-8-sig", errors="replace").strip()
            if not text or text[0] == "#":
                skip += 1
                continue
            delimiter = "," if "," in text else None
            fields = [f.strip() for f in text.split(",")] if delimiter else text.split()
            if len(fields) == 2 and any(not (f[1:] if f[:1] == "-" else f).isdigit() for f in fields):
                header, skip = fields, skip + 1  # the slow path decides the same (and names bad rows)
            else:
                raw.seek(start)  # the first data line is counted with the others
            break
        lines, longest, previous, last_newline, position = 0, 0, b"", -1, raw.tell()
        first_data = position
        while True:
            chunk = raw.read(_SCAN_BYTES)
            if not chunk:
                break
            probe = previous + chunk
            if any(pattern in probe for pattern in _IRREGULAR):
                return None
            newlines = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) + position
            if len(newlines):
                gaps = np.diff(np.concatenate([[last_newline if last_newline >= 0 else first_data - 1], newlines]))
                longest = max(longest, int(gaps.max()))
                last_newline = int(newlines[-1])
                lines += len(newlines)
            position += len(chunk)
            previous = chunk[-1:]
            if position - max(last_newline, first_data) > MAX_LINE_CHARS:
                return None
        if longest > MAX_LINE_CHARS or position == first_data:
            return None
        if position > last_newline + 1:
            lines += 1  # a last line without a newline
    if lines > max_rows:
        return None
    try:
        table = np.loadtxt(
            path, dtype=np.uint64, delimiter=delimiter, comments=None, skiprows=skip, ndmin=2, encoding="utf-8-sig"
        )  # at most max_rows lines: counted above
    except (ValueError, UnicodeDecodeError):
        return None
    if table.shape[1:] != (2,) or len(table) != lines:
        return None
    rows = np.arange(len(table), dtype=np.int64) + skip + 1
    return _finish(table[:, 0].copy(), table[:, 1].copy(), rows, path, kind, "line", header)


def _read_text_by_line(path: str, kind: str, max_rows: int) -> Agglomeration:
    from array import array

    left, right, lines = array("Q"), array("Q"), array("q")
    header: list[str] = []
    delimiter = None  # decided by the first non-comment line: "," when it has one, else whitespace
    problems: dict[str, list[int]] = {"non-integer fields": [], "negative values": [], "wrong column count": []}
    counts = dict.fromkeys(problems, 0)  # all of them; only the first few line numbers are kept
    three_columns = False

    def problem(what: str, number: int) -> None:
        counts[what] += 1
        if len(problems[what]) < SHOWN:
            problems[what].append(number)

    try:
        handle = open(path, encoding="utf-8-sig", errors="strict", newline="")
    except OSError as error:
        raise AgglomerationError(f"cannot read agglomeration file {path}: {error.strerror or error}") from None
    with handle:
        try:
            number = 0
            while True:
                line = handle.readline(MAX_LINE_CHARS + 1)  # a line without end is never read whole
                if not line:
                    break
                number += 1
                if len(line) > MAX_LINE_CHARS:
                    raise AgglomerationError(
                        f"{path}: line {number} is longer than {MAX_LINE_CHARS} characters "
                        "(expected two integer columns)"
                    )
                text = line.strip()
                if not text or text[0] == "#":
                    continue
                if delimiter is None:
                    delimiter = "," if "," in text else " "
                fields = [f.strip() for f in text.split(",")] if delimiter == "," else text.split()
                if len(fields) != 2:
                    problem("wrong column count", number)
                    three_columns = three_columns or len(fields) == 3
                    continue
                x, y = fields
                if (
                    x.isdigit()
                    and y.isdigit()
                    and len(x) <= MAX_FIELD_CHARS
                    and len(y) <= MAX_FIELD_CHARS
                    and x.isascii()
                    and y.isascii()
                ):
                    vx, vy = int(x), int(y)
                    if vx <= _UINT64_MAX and vy <= _UINT64_MAX:
                        if len(left) >= max_rows:
                            raise AgglomerationError(f"{path} has more than the {max_rows} rows allowed")
                        left.append(vx)
                        right.append(vy)
                        lines.append(number)
                        continue
                    problem("non-integer fields", number)  # beyond 64 bits
                    continue
                signless = [f[1:] if f[:1] == "-" else f for f in fields]
                numeric = all(0 < len(f) <= MAX_FIELD_CHARS and f.isascii() and f.isdigit() for f in signless)
                if numeric:
                    problem("negative values", number)
                elif (
                    not len(left) and not header and not any(counts.values()) and any(not f.isdigit() for f in signless)
                ):
                    header = fields  # a first row that is not numbers is a header
                else:
                    problem("non-integer fields", number)
        except UnicodeDecodeError as error:
            raise AgglomerationError(
                f"{path} is not text (UTF-8): {error.reason} at byte {error.start}; binary tables must be .npy"
            ) from None
    found = [
        f"{what} at {', '.join(f'line {r}' for r in rows)}"
        + (f" … ({counts[what]} in all)" if counts[what] > SHOWN else "")
        for what, rows in problems.items()
        if rows
    ]
    if found:
        hint = (
            " — Raveler's superpixel_to_segment_map.txt has three (plane superpixel segment): map its "
            "segments to bodies with segment_to_body_map.txt into one 'supervoxel body' table first"
            if three_columns
            else ""
        )
        raise AgglomerationError(
            f"{path}: " + "; ".join(found) + " (expected two non-negative integer columns per line)" + hint
        )
    as_array = [
        np.frombuffer(a, dtype=a.typecode == "Q" and np.uint64 or np.int64).copy()
        if len(a)
        else np.zeros(0, dtype=np.uint64 if a.typecode == "Q" else np.int64)
        for a in (left, right, lines)
    ]
    return _finish(*as_array, path, kind, "line", header)


def _finish(left, right, rows, source, kind, row_word, header) -> Agglomeration:
    agg = Agglomeration(kind=kind, left=left, right=right, rows=rows, source=source, row_word=row_word, header=header)
    if kind == "auto":
        agg.kind, agg.why = _decide_kind(left, right, header)
    else:
        agg.why = "as asked"
    _check_layout(agg)
    if agg.kind == "bodies":
        _check_one_body_each(agg)
    return agg


def _decide_kind(left, right, header) -> tuple[str, str]:
    if header:
        named = header[1].lower()
        if any(word in named for word in BODY_WORDS):
            return "bodies", f"auto: header names column 2 {header[1]!r}"
        return "pairs", f"auto: header {','.join(header)!r} names no body column"
    if not len(left):
        return "pairs", "auto: empty file"
    column0_unique = len(fastremap.unique(left)) == len(left)
    column1_repeats = len(fastremap.unique(right)) < len(right) or bool((right == 0).any())
    if column0_unique and column1_repeats:
        return "bodies", "auto: column 1 never repeats and column 2 does (or holds body 0)"
    return "pairs", "auto: column 1 repeats or column 2 never does"


def _check_layout(agg: Agglomeration) -> None:
    """Supervoxel labels must fit the id layout: plain (< 2**56) or already in layer 1."""
    columns = [agg.left, agg.right] if agg.kind == "pairs" else [agg.left]
    for column in columns:
        layer = column >> np.uint64(LAYER_SHIFT)
        bad = (layer != 0) & (layer != SUPERVOXEL_LAYER)
        if bad.any():
            values = sorted({int(v) for v in column[bad][:SHOWN]})
            raise AgglomerationError(
                f"{agg.source}: labels of 2**56 or more that are not layer-1 supervoxel ids at {agg.where(bad)} "
                f"(e.g. {', '.join(map(str, values))}): the id layout keeps 56 bits for a label"
            )
    if agg.kind == "pairs":
        zero = (agg.left == 0) | (agg.right == 0)
    else:
        zero = agg.left == 0
    if zero.any():
        raise AgglomerationError(f"{agg.source}: label 0 is background, not a supervoxel, at {agg.where(zero)}")


def _check_one_body_each(agg: Agglomeration) -> None:
    """A supervoxel listed twice must name the same body both times."""
    svs = Agglomeration.supervoxel_ids(agg.left)
    order = np.lexsort((agg.right, svs))
    s, b = svs[order], agg.right[order]
    clash = (s[1:] == s[:-1]) & (b[1:] != b[:-1])
    if clash.any():
        clashing = np.isin(svs, s[1:][clash])
        examples = sorted({int(v) for v in agg.left[clashing]})[:SHOWN]
        raise AgglomerationError(
            f"{agg.source}: supervoxel(s) {', '.join(map(str, examples))} listed under two different bodies "
            f"at {agg.where(clashing)}"
        )
