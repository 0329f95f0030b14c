"""One load run and what it measures: seeding, load, faults on a clock, CPU, metrics, cost per operation, and the ``summary.json`` it reports."""
