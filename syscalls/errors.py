"""Typed errors with errno-like codes.

Anything a user, a client, a plugin or a model file can cause raises an
:class:`LlmosError` subclass; the daemon turns it into an error reply.
"""

from __future__ import annotations

from typing import ClassVar


class LlmosError(Exception):
    """Base of every error a caller can cause; ``code`` is errno-like."""

    code: ClassVar[str] = "EIO"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class NotFound(LlmosError):
    """No such process, model or file."""

    code = "ENOENT"


class PermissionDenied(LlmosError):
    """The caller may not act on that object."""

    code = "EPERM"


class InvalidArgument(LlmosError):
    """A parameter is out of range or of the wrong kind."""

    code = "EINVAL"


class OutOfMemory(LlmosError):
    """The request could never fit in the KV pool, even alone."""

    code = "ENOMEM"


class Busy(LlmosError):
    """The resource is in use; try again later."""

    code = "EBUSY"


class NotImplementedSyscall(LlmosError):
    """No such syscall."""

    code = "ENOSYS"


class ProtocolError(LlmosError):
    """A malformed frame or message."""

    code = "EPROTO"


class BadModelFile(LlmosError):
    """A model file is corrupt, truncated or of an unsupported kind."""

    code = "EBADF"


class ContextOverflow(InvalidArgument):
    """A prompt (plus its requested output) exceeds the model's context."""


class NetworkUnavailable(LlmosError):
    """A model hub could not be reached."""

    code = "ENETUNREACH"


class Interrupted(LlmosError):
    """The call was cut short (the kernel is shutting down, or a stream fell behind)."""

    code = "EINTR"


class TimedOut(LlmosError):
    """The call did not finish in the time it was given."""

    code = "ETIMEDOUT"


class KernelUnavailable(LlmosError):
    """No kernel answers on the socket."""

    code = "ECONNREFUSED"


def _subclasses(cls: type[LlmosError]) -> list[type[LlmosError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def error_from_code(code: str, message: str) -> LlmosError:
    """The typed error for a wire ``code`` (the most general class with that code)."""
    for cls in _subclasses(LlmosError):
        if cls.code == code:
            return cls(message)
    error = LlmosError(message)
    error.code = code  # type: ignore[misc]
    return error
