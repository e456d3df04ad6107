"""Typed exceptions for the user's mistakes.

Every message names the offending file (or config key) and says what was expected, so a
user can fix the input without reading the code.
"""


class ConnexError(Exception):
    """Base class of every error ConneX raises about its input."""


class BIDSError(ConnexError):
    """A BIDS input file or the dataset layout is not what ConneX needs."""


class ConfigError(ConnexError, ValueError):
    """A configuration value (or a keyword argument that mirrors one) is invalid.

    Also a ``ValueError``, as the library raised for such values before it had this class."""


class AtlasError(ConnexError):
    """An atlas image or its region table is invalid."""


class ConnectomeError(ConnexError):
    """A connectome file, or the set of connectomes, is not what the model stages need."""


def check_choice(name: str, value, allowed):
    """Return ``value`` if it is one of ``allowed``, else raise :class:`ConfigError`.

    Parameters
    ----------
    name : str
        The setting's name, as the message shows it.
    value
        The value given.
    allowed : iterable
        The valid values, usually a registry of :mod:`connex.registry` (a dict's keys count).

    Raises
    ------
    ConfigError
        ``"'kind' must be one of {'a', 'b'}; 'x' was provided."``
    """
    choices = tuple(allowed)
    if value not in choices:
        listed = ", ".join(repr(choice) for choice in choices)
        raise ConfigError(f"{name!r} must be one of {{{listed}}}; {value!r} was provided.")
    return value
