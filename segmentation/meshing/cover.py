"""A root's mesh manifest: the fewest fragments that show exactly its supervoxels.

A meshing run stores, per chunk, one fragment per root of that moment ("group": the root's
supervoxels in the chunk). For any root R — now or of any moment — a stored group can stand in
R's manifest when all its supervoxels are R's: after a merge, R's manifest is its parts' stored
fragments, with nothing remeshed. What no stored group covers (chunks where a split cut a root)
is shown by one *dynamic* fragment per chunk, named after the supervoxels it shows, made from
the voxels and kept: the next root with the same supervoxels in that chunk (e.g. after a merge
with a neighbour that has none there) lists the same name. It is made in the background from
the moment the edit is applied (or the manifest first asked for). Until it is made, the manifest
lists in its place its *quick* twin (name + ``q``): the same voxels' surface, unsimplified, made
on request in a fraction of the time (the simplifier is most of the cost) — correct at once,
one request per cut chunk; once the simplified one is made, manifests list it (the switch).

A supervoxel's own stored fragment is no fallback here: with Raveler-style supervoxels (one per
z-plane) per-supervoxel surfaces are 80× the bytes of the roots' and tripled meshing time.

Neuroglancer's graphene source reads a name ``~<key>:<rest>``: ``key`` identifies the bytes in
its cache; a ``rest`` of ``~<path>:<offset>:<size>`` is read by byte range from
``initial/<path>``, any other ``rest`` whole from ``dynamic/<rest>``.
"""

from __future__ import annotations

import numpy as np

from .levels import file_name
from .store import Generation

_GROUP_KEY_BITS = 40  # a stored fragment's key: generation << 40 | group number


QUICK = "q"  # the suffix of a dynamic fragment's quick twin


def manifest(
    generation: Generation, supervoxels: np.ndarray
) -> tuple[list[str], list[tuple[str, np.ndarray]], list[str]]:
    """(fragment names, the dynamic fragments the root needs as (name, supervoxels), the names of those
    not made yet, listed by their quick twin instead) for a root with these supervoxel ids."""
    index = generation.index()
    svs = np.asarray(supervoxels, dtype=np.uint64)
    at = np.searchsorted(index["svs"], svs)
    at = np.minimum(at, max(len(index["svs"]) - 1, 0))
    known = (index["svs"][at] == svs) if len(index["svs"]) else np.zeros(len(svs), dtype=bool)
    at, svs = at[known], svs[known]  # supervoxels no chunk showed (none in the volume) have no mesh
    starts, stops = index["indptr"][at], index["indptr"][at + 1]
    counts = stops - starts
    entries = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(int(counts.sum()))
    entry_sv = np.repeat(svs, counts)
    names = []
    number = generation.number
    levels = index["entry_groups"].shape[1]
    remaining = np.arange(len(entries))  # entries (a supervoxel in a chunk) no fragment listed yet shows
    for level in reversed(range(levels)):  # the largest blocks first: fewest fragments
        groups = index["entry_groups"][entries[remaining], level]
        found, seen = np.unique(groups, return_counts=True)
        whole = found[seen == index["group_svcount"][found]]  # every supervoxel of the group is the root's
        for group in whole.tolist():
            size = int(index["group_nbytes"][group])
            if size:  # never list an empty fragment
                path = f"g{number}-{file_name(level, index['group_coords'][group])}"  # a new run: new names
                names.append(
                    f"~{(number << _GROUP_KEY_BITS) | group}:~{path}.frags:{int(index['group_offset'][group])}:{size}"
                )
        if level:
            remaining = remaining[~np.isin(groups, whole)]
    entries, entry_sv = entries[remaining], entry_sv[remaining]
    rest = ~np.isin(groups, whole)
    dynamic, pending = [], []
    if rest.any():
        chunks = index["entry_chunk"][entries[rest]]
        rest_svs = entry_sv[rest]
        order = np.lexsort((rest_svs, chunks))
        chunks, rest_svs = chunks[order], rest_svs[order]
        bounds = np.flatnonzero(np.diff(chunks)) + 1
        for part_chunks, part_svs in zip(np.split(chunks, bounds), np.split(rest_svs, bounds)):
            name = generation.dynamic_name(index["chunk_coords"][part_chunks[0]], part_svs)
            dynamic.append((name, part_svs))
            made = generation.dynamic_size(name)
            if made is None:
                pending.append(name)
                name += QUICK
            if made != 0:  # made empty (no surface there): nothing to list
                names.append(f"~{name}:{name}")
    return names, dynamic, pending


def remember_dynamic(generation: Generation, dynamic: list[tuple[str, np.ndarray]]) -> None:
    """Keep which supervoxels each dynamic fragment shows, so that asking for it can make it."""
    for name, supervoxels in dynamic:
        generation.keep_dynamic(name, ".svs", np.asarray(supervoxels, dtype="<u8").tobytes(), if_new=True)
