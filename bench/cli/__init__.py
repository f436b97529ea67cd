"""``python -m bench``: a thin shell over the Python API, one module per group of commands."""
