"""On-device anomaly models: a firmware profile's ``[[models]]`` scored over the sample stream.

A model is a small int8 TensorFlow Lite autoencoder (run with LiteRT, never TensorFlow) and a
model card beside it (:mod:`.card`): the features it reads, the scaler, the window, the
threshold. :mod:`.windows` turns samples into 1 Hz rows and rows into window vectors,
:mod:`.scorer` runs the model, :mod:`.detector` debounces scores into ``anomaly`` events and
:mod:`.runtime` loads a profile's models for the agent, leaving out (and reporting) any that
cannot run.

The package imports nothing itself: an agent whose profile names no model never loads numpy
or LiteRT (see :mod:`.setup`).
"""
