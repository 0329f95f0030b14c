"""A fourth design that lives only in the tests: the "add a design" walkthrough of docs/architecture.md."""
