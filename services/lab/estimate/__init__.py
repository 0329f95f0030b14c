"""``sdlab estimate``: measured cost per operation turned into a fleet plan, arithmetic shown."""
