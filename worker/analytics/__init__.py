"""Learning from outcomes: statistics, rollup reading, reports and suggested rule changes.

``stats`` is pure arithmetic; ``rollups`` reads the hourly rollup hashes the finish script writes;
the report, suggestion and export commands (``worker/cli``) are built on both.
"""
