"""Connectivity: synapse tables bound to supervoxels, partners and matrices at any moment.

``Synapses`` (synapses.py) is the facade: add from a file, remove, and the per-dataset columns
queries read (index.py: a memory-mapped snapshot per machine plus later writes; columns.py: the
columns and their snapshots; sql.py: rows in bulk). queries.py answers partners and matrices,
files.py reads and writes CSV/Parquet with CAVE's column names, annotations.py encodes a
neuron's synapses in Neuroglancer's precomputed annotation format.
"""

from .files import Incoming, SynapseFileError, read_table, write_table
from .synapses import ImportReport, NoSynapses, SynapseError, Synapses

__all__ = [
    "ImportReport",
    "Incoming",
    "NoSynapses",
    "SynapseError",
    "SynapseFileError",
    "Synapses",
    "read_table",
    "write_table",
]
