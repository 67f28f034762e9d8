"""The package's errors, named for what went wrong."""

from __future__ import annotations


class CallcenterError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(CallcenterError):
    """A configuration file is invalid. Names the file, the key path and the line."""

    def __init__(self, message: str, file: str | None = None, key: str | None = None,
                 line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.key = key
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        if self.key:
            where += f": {self.key}"
        return f"{where}: {self.message}"


class TelephonyError(CallcenterError):
    """A SIP/media operation failed (the call leg is gone, media could not start...)."""


class CallGone(TelephonyError):
    """The call leg was hung up while an operation was waiting on it."""
