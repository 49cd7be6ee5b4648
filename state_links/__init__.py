"""Share links: stored Neuroglancer states behind short URLs (see issue 4)."""
