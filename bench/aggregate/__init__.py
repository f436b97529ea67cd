"""From stored per-image measurements to cells: rates with intervals per (method, data set, ε),
the process pool that computes them, and the fingerprints that say when a cell must be recomputed."""
