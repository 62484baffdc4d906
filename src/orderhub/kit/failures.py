"""What failed, in words, for operators: error log entries, a delivery's `lastError`,
health checks. Python class names stay in the logs."""

from __future__ import annotations

UNEXPECTED = "an unexpected internal error (details in the logs)"


def in_words(exc: BaseException) -> str:
    """A short sentence for `exc` that names no Python class."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, RecursionError):
        return "the data was nested too deeply to process"
    if isinstance(exc, MemoryError):
        return "ran out of memory"
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(exc, ConnectionResetError):
        return "the connection was reset"
    if isinstance(exc, ConnectionError):
        return "the connection failed"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "a file or folder does not exist"
    if isinstance(exc, OSError):
        return f"a system error: {exc.strerror}" if exc.strerror else "a system error"
    return UNEXPECTED
