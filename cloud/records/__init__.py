"""The fleet's records: vehicle profiles, drivers and their validation, encryption and import."""
