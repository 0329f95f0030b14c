"""Reports: charts and ``report.md`` for runs, and the evidence kept in docs (copied and re-measured)."""
