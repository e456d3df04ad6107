"""Typed exceptions for the user's mistakes.

Every message names the offending file (or config key) and says what was expected, so a
user can fix the input without reading the code.
"""


class ConnexError(Exception):
    """Base class of every error ConneX raises about its input."""


class BIDSError(ConnexError):
    """A BIDS input file or the dataset layout is not what ConneX needs."""


class ConfigError(ConnexError):
    """The workflow configuration is invalid."""


class AtlasError(ConnexError):
    """An atlas image or its region table is invalid."""
