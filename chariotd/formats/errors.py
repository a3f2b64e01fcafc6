"""The one exception every format raises for a value or text it cannot handle."""

from __future__ import annotations


class FormatError(ValueError):
    """A value cannot be written in a format, or a text cannot be read in it.

    The message says why, for a log line; callers reject the change (nothing is
    written, nothing is notified) and carry on.
    """
