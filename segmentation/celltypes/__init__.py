"""Cell-type tags, their vocabulary and search."""
