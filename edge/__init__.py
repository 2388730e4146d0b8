"""The Fleetlink edge agent: sources → batcher → SQLite outbox → MQTT uplink.

Installable with ``fleetlink[edge]`` alone; nothing here imports the cloud's stack or the simulator.
"""
