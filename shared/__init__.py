"""The contract both the edge agent and the cloud import: signals, topics, messages, codec."""
