"""Where measurements live: the result store (``results.sqlite``, the only module that touches it),
the feature cache on disk, and the provenance of a run (versions, seeds, weights' hashes)."""
