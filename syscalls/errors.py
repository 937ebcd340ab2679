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
