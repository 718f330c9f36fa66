"""Errors that carry a message a user can act on.

Every error raised for bad input names the problem and the fix.  The
command-line interface prints them without a traceback and exits with a
non-zero status (2 for bad input).
"""


class CmlibError(Exception):
    """Base class: a problem the user can fix; the message says how."""

    exit_code = 2


class InputError(CmlibError, ValueError):
    """Bad arguments or parameters (out of range, unknown name, wrong type)."""


class DataFileError(CmlibError):
    """A data file that is missing, unreadable, truncated or not in the cmlib schema."""


class OutputExistsError(CmlibError, FileExistsError):
    """The output exists and would be overwritten; pass overwrite=True / --overwrite."""


class UnsafeInputError(CmlibError):
    """Refused to load an input that could execute code (e.g. a pickle) without explicit trust."""


class CmlibWarning(UserWarning):
    """Something works but not as the user probably wants (e.g. many times slower); the message says why and
    what to do instead.  The command-line interface prints it as ``cmlib COMMAND: warning: ...``."""


class EmulatedPrecisionWarning(CmlibWarning):
    """bf16 asked for on hardware without bf16 units, where it is emulated and many times slower."""
