"""A write's answer holds the rows that request wrote, never a concurrent writer's (private ones included)."""

from __future__ import annotations

from segmentation.celltypes.tags import CellTags
from segmentation.celltypes.vocabulary import Vocabulary
from segmentation.datasets import Datasets


def test_a_tag_writer_gets_its_own_tags_when_another_commits_in_between(cg_server, tmp_path, monkeypatch):
    url = cg_server.database_url
    dataset = Datasets(url).get("cg")
    vocabulary = Vocabulary.for_dataset(tmp_path, "cg")
    mine, other = CellTags(url), CellTags(url)  # two processes' views of the same table
    real_sync = CellTags.sync
    interleaved = []

    def sync_after_a_concurrent_commit(self):
        if self is mine and not interleaved:  # right after my commit, before I read my rows back
            interleaved.append(
                other.add(dataset, [28, 16, 4], "astrocyte", "someone-else", vocabulary, note="not yours")
            )
        return real_sync(self)

    monkeypatch.setattr(CellTags, "sync", sync_after_a_concurrent_commit)
    added = mine.add(dataset, [4, 16, 4], "L2/3 pyramidal", "me", vocabulary, note="mine")
    assert interleaved and interleaved[0].user == "someone-else"
    assert (added.user, added.note, added.term) == ("me", "mine", "L2/3 pyramidal")
    many, refused = mine.add_many(
        dataset,
        [
            {"voxel": [4, 16, 4], "term": "astrocyte", "note": "a"},
            {"voxel": [12, 16, 4], "term": "astrocyte", "note": "b"},
        ],
        "me",
        vocabulary,
    )
    assert not refused and [t.note for t in many] == ["a", "b"] and all(t.user == "me" for t in many)
