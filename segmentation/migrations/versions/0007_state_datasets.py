"""states tied to every dataset they name; 53-bit random state ids; anchors keyed by layer position

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

* ``state_datasets(state_id, dataset)``: reading a state needs view rights on each dataset it
  names. Existing states are backfilled from their stored JSON: every string is searched for
  http(s) URLs whose path is one of our dataset routes, **on any host** — the server that stored
  them may have been reached under names we cannot know now, so an old state is over-tied
  rather than under-tied (a state naming another server's ``/data/demo/…`` is tied to our
  ``demo``, if we have one). Only names of datasets that exist are tied (a name that is not ours
  shows nothing of ours). The legacy ``states.dataset`` and the anchors' datasets are tied too, and
  a state naming another stored state is tied to that state's datasets.
* ``states.id`` becomes 64-bit on PostgreSQL (SQLite's rowid is 64-bit already): new states get a
  random id in [2^40, 2^53) so integer ids cannot be enumerated; old ids keep working.
* ``state_anchors`` gains ``layer_index`` in its primary key (two layers may share a name);
  existing anchors get -1, "known by name only".

This file is self-contained on purpose: migrations run years later against code that has moved
on, so it carries its own small copy of the path classification (``state_links.sources`` is
the living one) and of blob decoding (codec ids and the v1 dictionary file are permanent).
"""

import json
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATE_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_DICTIONARY_V1 = Path(__file__).resolve().parents[3] / "state_links" / "dictionaries" / "states-v1.zdict"
_PAGE = 500


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE states ALTER COLUMN id TYPE BIGINT")
    _rebuild_anchors(postgres)
    op.create_table(
        "state_datasets",
        sa.Column("state_id", STATE_ID, sa.ForeignKey("states.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("dataset", sa.String(64), primary_key=True),
    )
    op.create_index("ix_state_datasets_dataset", "state_datasets", ["dataset"])
    _backfill(bind)


def downgrade() -> None:
    """Drop the ties and the layer positions; ``states.id`` stays 64-bit (new ids do not fit 32 bits,
    and 0006's code reads a BIGINT column as well as an INTEGER one)."""
    op.drop_index("ix_state_datasets_dataset", table_name="state_datasets")
    op.drop_table("state_datasets")
    op.create_table(
        "state_anchors_old",
        sa.Column("state_id", STATE_ID, sa.ForeignKey("states.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("layer", sa.String(256), primary_key=True),
        sa.Column("segment_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("sv_id", sa.BigInteger, nullable=False),
        sa.Column("x", sa.Integer, nullable=True),
        sa.Column("y", sa.Integer, nullable=True),
        sa.Column("z", sa.Integer, nullable=True),
    )
    # two layers of one name collapse into one (the older schema cannot tell them apart)
    op.execute(
        "INSERT INTO state_anchors_old (state_id, layer, segment_id, dataset, sv_id, x, y, z) "
        "SELECT state_id, layer, segment_id, MIN(dataset), MIN(sv_id), MIN(x), MIN(y), MIN(z) "
        "FROM state_anchors GROUP BY state_id, layer, segment_id"
    )
    op.drop_table("state_anchors")
    op.rename_table("state_anchors_old", "state_anchors")


def _rebuild_anchors(postgres: bool) -> None:
    """A new primary key (state_id, layer_index, layer, segment_id): build, copy, swap."""
    op.create_table(
        "state_anchors_new",
        sa.Column("state_id", STATE_ID, sa.ForeignKey("states.id", ondelete="CASCADE"), nullable=False),
        sa.Column("layer_index", sa.Integer, nullable=False, server_default="-1"),
        sa.Column("layer", sa.String(256), nullable=False),
        sa.Column("segment_id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("sv_id", sa.BigInteger, nullable=False),
        sa.Column("x", sa.Integer, nullable=True),
        sa.Column("y", sa.Integer, nullable=True),
        sa.Column("z", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("state_id", "layer_index", "layer", "segment_id", name="state_anchors_new_pkey"),
    )
    op.execute(
        "INSERT INTO state_anchors_new (state_id, layer_index, layer, segment_id, dataset, sv_id, x, y, z) "
        "SELECT state_id, -1, layer, segment_id, dataset, sv_id, x, y, z FROM state_anchors"
    )
    op.drop_table("state_anchors")
    op.rename_table("state_anchors_new", "state_anchors")
    if postgres:  # the names PostgreSQL would have given the table had it been created so
        op.execute("ALTER TABLE state_anchors RENAME CONSTRAINT state_anchors_new_pkey TO state_anchors_pkey")
        op.execute(
            "ALTER TABLE state_anchors RENAME CONSTRAINT state_anchors_new_state_id_fkey TO state_anchors_state_id_fkey"
        )


# ---- backfill ------------------------------------------------------------------------------
def _backfill(bind) -> None:
    ours = {name for (name,) in bind.execute(sa.text("SELECT name FROM datasets"))}
    ties: dict[int, set[str]] = {}
    refs: dict[int, set[str]] = {}
    short_ids: dict[str, int] = {}
    last = None
    while True:
        page = sa.text(
            f"SELECT id, short_id, codec, blob, dataset FROM states WHERE id > :last ORDER BY id LIMIT {_PAGE}"
        )
        rows = bind.execute(page, {"last": -1 if last is None else last}).all()
        if not rows:
            break
        for state_id, short_id, codec, blob, dataset in rows:
            short_ids[short_id] = state_id
            named, states = _named(json.loads(_decode(codec, blob)))
            ties[state_id] = (named | {dataset}) & ours
            if states:
                refs[state_id] = states
        last = rows[-1][0]
    for state_id, dataset in bind.execute(sa.text("SELECT DISTINCT state_id, dataset FROM state_anchors")):
        ties.setdefault(state_id, set()).add(dataset)
    changed = True
    while changed:  # a state naming a state: tied to its datasets too (to any depth)
        changed = False
        for state_id, names in refs.items():
            for ref in names:
                other = int(ref) if ref.isdigit() else short_ids.get(ref)
                extra = ties.get(other, set()) - ties[state_id]
                if extra:
                    ties[state_id] |= extra
                    changed = True
    rows = [{"state_id": s, "dataset": d} for s, names in ties.items() for d in sorted(names)]
    table = sa.table("state_datasets", sa.column("state_id"), sa.column("dataset"))
    for start in range(0, len(rows), _PAGE):
        bind.execute(sa.insert(table), rows[start : start + _PAGE])


_decompressors: dict = {}


def _decode(codec: int, blob: bytes) -> bytes:
    """Codec 0: the bytes; codec 1: zstd with the shipped v1 dictionary (a checksum fails loudly on a wrong one)."""
    if codec == 0:
        return bytes(blob)
    if codec == 1:
        if codec not in _decompressors:
            import zstandard

            dictionary = zstandard.ZstdCompressionDict(
                _DICTIONARY_V1.read_bytes(), dict_type=zstandard.DICT_TYPE_FULLDICT
            )
            _decompressors[codec] = zstandard.ZstdDecompressor(dict_data=dictionary)
        return _decompressors[codec].decompress(bytes(blob))
    raise RuntimeError(f"a stored state has codec {codec}, which this migration does not know")


_URL = re.compile(r"https?:[/\\]*([^\s|\"'<>`]+)", re.IGNORECASE)
_DATASET_ROUTES = (
    ("data",),
    ("segmentation", "table"),
    ("segmentation", "api", "v1", "table"),
    ("meshing", "api", "v1", "table"),
    ("api", "v1", "datasets"),
    ("at",),
)
_STATE_ROUTES = (("api", "v1", "states"), ("s",), ("nglstate", "api", "v1", "raw"), ("nglstate", "api", "v1"))


def _named(state) -> tuple[set[str], set[str]]:
    """Dataset names and state references in any http(s) URL of any string of ``state`` (keys too)."""
    datasets, states = set(), set()
    stack = [state]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and (":" in item or "%" in item or not item.isascii()):
            for text in _spellings(item):
                for match in _URL.finditer(text):
                    kind, name = _classify(urlsplit("http://" + match.group(1).replace("\\", "/")).path)
                    (datasets if kind == "dataset" else states if kind == "state" else set()).add(name)
    return datasets, states


def _spellings(text: str) -> list[str]:
    found = []
    for _ in range(9):
        text = text.replace("\t", "").replace("\r", "").replace("\n", "")
        text = text if text.isascii() else unicodedata.normalize("NFKC", text)
        found.append(text)
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return found


def _classify(path: str) -> tuple[str | None, str]:
    segments: list[str] = []
    for segment in unquote(path).replace("\\", "/").split("/"):
        if segment == "..":
            segments = segments[:-1]
        elif segment not in ("", "."):
            segments.append(segment)
    whole = tuple(segments)
    for prefix in _DATASET_ROUTES:
        if whole[: len(prefix)] == prefix and len(whole) > len(prefix):
            return "dataset", segments[len(prefix)].partition("@")[0]
    for prefix in _STATE_ROUTES:
        if whole[: len(prefix)] == prefix and len(whole) > len(prefix):
            return "state", segments[len(prefix)]
    if segments and segments[0] in ("materialize", "info") and "datastack" in segments:
        rest = segments[segments.index("datastack") + 1 :]
        rest = rest[1:] if rest[:1] == ["full"] and len(rest) > 1 else rest
        if rest:
            return "dataset", rest[0]
    return None, ""
