"""Training and evaluating on-device anomaly models (``fleetlink models``).

:mod:`.train` needs TensorFlow (``fleetlink[train]``); :mod:`.evaluate` runs the shipped
``.tflite`` with the same LiteRT code the agent uses, beside a rule baseline.
"""
