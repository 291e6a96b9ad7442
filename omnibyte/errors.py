"""The package's one exception type.

Everything OmniByte refuses (a bad parameter, a missing or corrupt checkpoint, an upload it
cannot convert) raises `OmniByteError` with a message written for the person who caused it, so
the CLI and the app can show it as one line instead of a traceback.
"""

from pathlib import Path

__all__ = ["OmniByteError", "read_file"]


class OmniByteError(ValueError):
    """A clear, user-facing refusal: bad input, bad parameter or unusable checkpoint."""


def read_file(path: str | Path) -> bytes:
    """The bytes of a file the user named, or an OmniByteError saying plainly why not."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise OmniByteError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise OmniByteError(f"{path} is a folder, not a file") from None
    except OSError as exc:
        raise OmniByteError(f"cannot read {path}: {exc.strerror or exc}") from None
