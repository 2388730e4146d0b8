"""Geofences: geometry, evaluation of vehicle positions, and the fence set pushed to devices."""
