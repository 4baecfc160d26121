"""The deterministic simulator: the real SWIM core in virtual time."""
