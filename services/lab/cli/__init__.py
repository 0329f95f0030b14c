"""``sdlab``: start, inspect, break and measure the lab (:mod:`.entry`; ``python -m services.lab.cli``).

Every expected problem ends in a one-line ``sdlab: error: ...`` that says what to do.
"""
