"""The one error type of firmware profiles."""


class ProfileError(ValueError):
    """Raised for a profile (or a DBC file it names) that does not exist, cannot be read or
    is not valid; the message names the file and the line or field."""
