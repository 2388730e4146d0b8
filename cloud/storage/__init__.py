"""Storage for time: signal rollups and retention of samples and rollups."""
