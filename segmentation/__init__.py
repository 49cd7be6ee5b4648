"""Volumes and the versioned supervoxel graph: everything that runs without HTTP."""
