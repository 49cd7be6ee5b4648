"""Volumes and the versioned supervoxel graph: everything that runs without HTTP."""

from .storage import supply_session_token

# Every process that may reach an object store imports this package first (servers, the CLI, Dask
# workers unpickling a task), so CloudFiles' need for a session token is met once, here.
supply_session_token()
