"""Benchmarks: Fleetlink's figures printed beside a baseline measured in the same run.

``codec``: the wire formats of the contract; ``ingest``: the cloud's MQTT → PostgreSQL path
beside a raw COPY. ``fleetlink bench`` (:mod:`fleetlink.simulator.bench.cli`) runs them.
"""
