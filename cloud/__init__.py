"""The Fleetlink cloud: MQTT ingest into PostgreSQL and the REST API over it."""
