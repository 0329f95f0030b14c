"""Load generators: one driver base (:mod:`.base`) for Locust (closed loop), k6 and a design's own
script (open loop); the shapes' curves, and the files the engine loads into every Locust run."""
