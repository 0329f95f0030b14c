"""The lab: the ``sdlab`` CLI, its supervisor, fault injection, load and experiments."""
