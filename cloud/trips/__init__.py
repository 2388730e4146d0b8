"""Trips and totals from ignition and speed, recomputed per (vehicle, day) as data lands."""
