"""The package's one exception type.

Everything OmniByte refuses (a bad parameter, a missing or corrupt checkpoint, an upload it
cannot convert) raises `OmniByteError` with a message written for the person who caused it, so
the CLI and the app can show it as one line instead of a traceback.
"""

__all__ = ["OmniByteError"]


class OmniByteError(ValueError):
    """A clear, user-facing refusal: bad input, bad parameter or unusable checkpoint."""
