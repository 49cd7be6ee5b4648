"""Cell-type tags the demo ships with: every neuron typed, at two or three levels of the vocabulary.

Deterministic (by neuron number), each tag placed on the neuron's skeleton, so it lands
inside the neuron. Some neurons get only a coarse type ("pyramidal", "inhibitory"), most a
fine one; the demo's false merges then join neurons of different types, which search and
the viewer show as conflicts until they are split.
"""
from __future__ import annotations

TYPES = (
    "L2/3 pyramidal", "L2/3 pyramidal", "L5 ET", "L4 pyramidal", "pyramidal", "basket", "Martinotti",
    "inhibitory", "chandelier", "astrocyte", "L6 CT", "bipolar",
)


def demo_tag_rows(truth: dict) -> list[dict]:
    """Rows for CellTags.add_many: one tag per demo neuron, at the middle of its first branch."""
    rows = []
    for number, (neuron, facts) in enumerate(sorted(truth["neurons"].items(), key=lambda kv: int(kv[0]))):
        branch = facts["skeleton_voxels"][0]
        rows.append({
            "voxel": branch[len(branch) // 2],
            "term": TYPES[number % len(TYPES)],
            "note": f"demo neuron {neuron}",
            "confidence": 0.9 if number % 3 else 0.6,
        })
    return rows
