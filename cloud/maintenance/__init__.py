"""Maintenance and cost: when service is due, how likely a vehicle is to fail, what it costs."""
