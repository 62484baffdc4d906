"""What failed, in words, for operators: error log entries, a delivery's `lastError`,
health checks. Python class names stay in the logs."""

from __future__ import annotations

UNEXPECTED = "an unexpected internal error (details in the logs)"


# Most specific first: the first class `exc` is an instance of gives the words.
_WORDS: tuple[tuple[type[BaseException], str], ...] = (
    (TimeoutError, "timed out"),
    (RecursionError, "the data was nested too deeply to process"),
    (MemoryError, "ran out of memory"),
    (ConnectionRefusedError, "the connection was refused"),
    (ConnectionResetError, "the connection was reset"),
    (ConnectionError, "the connection failed"),
    (PermissionError, "permission denied"),
    (FileNotFoundError, "a file or folder does not exist"),
)


def reason(exc: BaseException) -> str:
    """The exception's own message when it has one (a driver's or a library's words),
    else what failed in words; never a class name."""
    text = " ".join(str(exc).split())
    return text[:300] if text else in_words(exc)


def in_words(exc: BaseException) -> str:
    """A short sentence for `exc` that names no Python class."""
    for kind, words in _WORDS:
        if isinstance(exc, kind):
            return words
    if isinstance(exc, OSError):
        return f"a system error: {exc.strerror}" if exc.strerror else "a system error"
    return UNEXPECTED
