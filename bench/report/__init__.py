"""From aggregated cells to what a person reads: report specs, tables, figures, the glossary, the
HTML page, the exported CSV/Markdown, the README tables and the regression gate (``bench check``)."""
