"""One reader per input format, each a :class:`~segmentation.importing.sources.VolumeSource` with an
``open(spec, *, dataset_path, axes)`` that reads only metadata."""
