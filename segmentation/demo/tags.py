"""Cell-type tags the demo ships with: every neuron typed, at two or three levels of the vocabulary.

Deterministic (by neuron number), each tag placed on the neuron's skeleton, so it lands
inside the neuron. Some neurons get only a coarse type ("pyramidal", "inhibitory"), most a
fine one; the demo's false merges then join neurons of different types, which search and
the viewer show as conflicts until they are split.
"""

from __future__ import annotations

from ..graph.points import supervoxel_at_voxel

_PLAIN = (1 << 56) - 1  # a supervoxel id without its layer bits: the demo volume's own label

TYPES = (
    "L2/3 pyramidal",
    "L2/3 pyramidal",
    "L5 ET",
    "L4 pyramidal",
    "pyramidal",
    "basket",
    "Martinotti",
    "inhibitory",
    "chandelier",
    "astrocyte",
    "L6 CT",
    "bipolar",
)


def demo_tag_rows(truth: dict, dataset) -> list[dict]:
    """Rows for CellTags.add_many: one tag per demo neuron, on its skeleton at a voxel that the
    segmentation really gives to that neuron (neurites touch and cross)."""
    rows = []
    falsely_merged = {int(label) for pair in truth.get("false_merges", []) for label in pair}
    for number, (neuron, facts) in enumerate(sorted(truth["neurons"].items(), key=lambda kv: int(kv[0]))):
        voxel = _voxel_on(neuron, facts["skeleton_voxels"], truth["supervoxel_to_neuron"], dataset, falsely_merged)
        if voxel is None:
            continue
        rows.append(
            {
                "voxel": voxel,
                "term": TYPES[number % len(TYPES)],
                "note": f"demo neuron {neuron}",
                "confidence": 0.9 if number % 3 else 0.6,
            }
        )
    return rows


def _voxel_on(neuron: str, branches, supervoxel_to_neuron: dict, dataset, preferred: set[int]):
    """A skeleton voxel whose supervoxel belongs to ``neuron``: on a falsely merged piece if the
    skeleton crosses one (so the demo's errors show as type conflicts), else nearest the middle
    of the first branch."""
    fallback = None
    for branch in branches:
        middle = len(branch) // 2
        for i in sorted(range(len(branch)), key=lambda i: abs(i - middle)):
            voxel = branch[i]
            try:
                label = supervoxel_at_voxel(dataset, voxel) & _PLAIN
            except ValueError:  # off the volume, or background
                continue
            if str(supervoxel_to_neuron.get(str(label))) != neuron:
                continue
            if label in preferred:
                return voxel
            fallback = fallback or voxel
    return fallback
