"""The package's one exception type.

Everything OmniByte refuses (a bad parameter, a missing or corrupt checkpoint, an upload it
cannot convert) raises `OmniByteError` with a message written for the person who caused it, so
the CLI and the app can show it as one line instead of a traceback.
"""

from pathlib import Path

__all__ = ["OmniByteError", "read_file"]


class OmniByteError(ValueError):
    """A clear, user-facing refusal: bad input, bad parameter or unusable checkpoint."""


def read_file(path: str | Path, limit: int | None = None, name: str | None = None) -> bytes:
    """The bytes of a file the user named, or an OmniByteError saying plainly why not.

    A file larger than `limit` bytes is refused from its size alone, before any of it is read.
    `name` is what messages call the file (an upload's own name rather than its temp path).
    """
    path = Path(path)
    name = name or str(path)
    try:
        if limit is not None and path.is_file() and path.stat().st_size > limit:
            raise OmniByteError(f"{name} is {path.stat().st_size:,} bytes; the limit is {limit:,} bytes "
                                f"({limit / 2**20:g} MiB)")
        return path.read_bytes()
    except FileNotFoundError:
        raise OmniByteError(f"file not found: {name}") from None
    except IsADirectoryError:
        raise OmniByteError(f"{name} is a folder, not a file") from None
    except OSError as exc:
        raise OmniByteError(f"cannot read {name}: {exc.strerror or exc}") from None
