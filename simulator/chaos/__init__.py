"""The chaos harness: every fault a fleet meets, against real services the run owns."""
