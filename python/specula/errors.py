"""Errors of the specula daemon, as exceptions (docs/error-model.md, docs/api.md "Errors").

Every failed call raises a :class:`SpeculaError` subclass chosen by the
daemon's ``data.kind``; it carries ``kind``, ``code`` (the JSON-RPC code),
``errno`` (the failing syscall's errno, or 0), ``hint`` (what a person can
do, or "") and the daemon's message.
"""

from __future__ import annotations


class SpeculaError(Exception):
    """A call to speculad failed."""

    kind = "internal"

    def __init__(self, message: str, *, kind: str | None = None, code: int | None = None,
                 errno: int = 0, hint: str = "", method: str = "") -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
        self.code = code
        self.errno = errno
        self.hint = hint
        self.method = method

    def __str__(self) -> str:
        text = self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.message!r}, kind={self.kind!r}, code={self.code!r}, "
                f"errno={self.errno!r}, hint={self.hint!r})")


class InvalidArgument(SpeculaError):
    kind = "invalid_argument"


class NotFound(SpeculaError):
    kind = "not_found"


class AlreadyExists(SpeculaError):
    kind = "already_exists"


class PermissionDenied(SpeculaError):
    kind = "permission_denied"


class FailedPrecondition(SpeculaError):
    kind = "failed_precondition"


class Unavailable(SpeculaError):
    """No daemon listens, it went away, or a kernel feature or tool is missing."""

    kind = "unavailable"


class ResourceExhausted(SpeculaError):
    kind = "resource_exhausted"


class DeadlineExceeded(SpeculaError):
    kind = "deadline_exceeded"


class Aborted(SpeculaError):
    kind = "aborted"


class DataLoss(SpeculaError):
    kind = "data_loss"


class Internal(SpeculaError):
    kind = "internal"


class ProtocolError(SpeculaError):
    """The daemon refused the message itself (-32700, -32600, -32601, -32602), or the
    client could not read what the daemon sent (not a JSON object, a malformed
    ``action.output`` chunk)."""

    kind = "protocol"


# The daemon's kinds, in the order of their codes (-32001 .. -32011).
_KINDS: list[type[SpeculaError]] = [InvalidArgument, NotFound, AlreadyExists, PermissionDenied,
                                    FailedPrecondition, Unavailable, ResourceExhausted, DeadlineExceeded,
                                    Aborted, DataLoss, Internal]
BY_KIND: dict[str, type[SpeculaError]] = {cls.kind: cls for cls in _KINDS}


def from_reply(error: object, method: str = "") -> SpeculaError:
    """The exception for a JSON-RPC ``error`` object of a reply."""
    if not isinstance(error, dict):
        return Internal(f"{method}: malformed error reply: {error!r}", method=method)
    message = error.get("message") if isinstance(error.get("message"), str) else "daemon error"
    code = error.get("code") if isinstance(error.get("code"), int) else None
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    kind = data.get("kind") if isinstance(data.get("kind"), str) else None
    errno = data.get("errno") if isinstance(data.get("errno"), int) else 0
    hint = data.get("hint") if isinstance(data.get("hint"), str) else ""
    cls: type[SpeculaError]
    if kind in BY_KIND:
        cls = BY_KIND[kind]
    elif code is not None and -32011 <= code <= -32001:
        cls = _KINDS[-32001 - code]
        kind = cls.kind
    elif code in (-32700, -32600, -32601, -32602):
        cls = ProtocolError
    else:
        cls = Internal
    return cls(message, kind=kind or cls.kind, code=code, errno=errno, hint=hint, method=method)
