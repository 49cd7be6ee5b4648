"""Cell-type tags as CSV, in the shape CAVE's cell-type tables have.

Import takes ``pt_position_x``/``_y``/``_z`` or ``pt_position`` (``"[x, y, z]"`` or
``"x y z"``), ``cell_type``, and optionally ``note`` and ``confidence`` (full-resolution
voxel coordinates). Export writes CAVE's ``cell_type_local`` columns plus ours.

Text cells that a spreadsheet would run as a formula (starting with ``= + - @``, a tab or a
carriage return) are exported with a leading apostrophe, as OWASP recommends against CSV
injection; importing takes that apostrophe off again, so notes survive a round trip.
"""

from __future__ import annotations

import csv
import io
import re

from ..errors import Invalid
from .tags import Tag

EXPORT_COLUMNS = (
    "id",
    "valid",
    "classification_system",
    "cell_type",
    "pt_position_x",
    "pt_position_y",
    "pt_position_z",
    "pt_supervoxel_id",
    "pt_root_id",
    "note",
    "confidence",
    "user",
    "created",
)
_NUMBERS = re.compile(r"-?\d+(?:\.\d+)?")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(text: str) -> str:
    """``text`` as a cell no spreadsheet runs as a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _restored(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_STARTS) else text


class CsvError(Invalid):
    pass


def read_tag_rows(text: str) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """(rows as (row number, {voxel, term, note, confidence}), [(row number, why refused)]).

    Row numbers count data rows from 1 (the header is row 0), as the import report shows them.
    """
    reader = csv.DictReader(io.StringIO(text))
    columns = {c.strip().lower(): c for c in (reader.fieldnames or [])}
    has_xyz = all(f"pt_position_{a}" in columns for a in "xyz")
    if not has_xyz and "pt_position" not in columns:
        raise CsvError("the CSV needs pt_position_x, pt_position_y, pt_position_z (or pt_position) columns")
    if "cell_type" not in columns:
        raise CsvError("the CSV needs a cell_type column")
    rows, rejected = [], []
    for number, record in enumerate(reader, start=1):
        get = lambda name: (record.get(columns[name]) or "").strip() if name in columns else ""  # noqa: E731
        try:
            if has_xyz:
                voxel = [_integer(get(f"pt_position_{a}")) for a in "xyz"]
            else:
                found = _NUMBERS.findall(get("pt_position"))
                if len(found) != 3:
                    raise ValueError(f"pt_position {get('pt_position')!r} is not three numbers")
                voxel = [_integer(v) for v in found]
        except ValueError as error:
            rejected.append((number, str(error)))
            continue
        confidence = get("confidence")
        rows.append(
            (
                number,
                {
                    "voxel": voxel,
                    "term": _restored(get("cell_type")),
                    "note": _restored(get("note")),
                    "confidence": confidence if confidence else None,
                },
            )
        )
    return rows, rejected


def _integer(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"position value {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")) or value != int(value):
        raise ValueError(f"position value {text!r} is not a whole voxel")
    return int(value)


def write_tags(tags: list[tuple[Tag, int]]) -> str:
    """(tag, root at the moment asked) pairs as CSV with CAVE's cell-type columns first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for tag, root in tags:
        x, y, z = tag.voxel
        writer.writerow(
            [
                tag.id,
                "t" if tag.retracted_at is None else "f",
                "axonlink",
                neutralised(tag.term),
                x,
                y,
                z,
                tag.sv_id,
                root,
                neutralised(tag.note),
                "" if tag.confidence is None else tag.confidence,
                neutralised(tag.user),
                tag.created_at.isoformat(),
            ]
        )
    return out.getvalue()
