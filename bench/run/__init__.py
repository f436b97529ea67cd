"""Running a benchmark: the configuration and grid (:mod:`.evaluate`), the per-image executor that
fills the result store, seeds, and the check that the installed dependencies are the tested ones."""
