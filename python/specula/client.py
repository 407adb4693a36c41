"""A client of speculad's JSON-RPC 2.0 API over its Unix socket (docs/api.md).

One JSON object per line; calls are sent one at a time per Client (a Client
is not shared between threads: make one per thread). Replies are matched by
id; notifications before a reply go to the call's handler (a streaming
commit's output, docs/api.md "Streaming output") or are skipped. Errors
raise the SpeculaError subclass of the daemon's kind (specula.errors).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket as _socket
from typing import Any, Callable, Optional, Union

from . import errors
from .wire import (OUTPUT_METHOD, BranchDetail, BranchDiff, BranchSummary, Checkpoint, CheckpointDiff, CommitResult,
                    OutputChunk, SessionInfo, SpeculationConfig, Version, decode, decode_list)

DEFAULT_SOCKET = "/run/specula/speculad.sock"
MAX_MESSAGE_BYTES = 4 << 20

# on_notification(method, params) of Client.call.
NotificationHandler = Callable[[str, Any], None]
# on_output(stream, data) of Client.commit: stream is "stdout" or "stderr".
OutputHandler = Callable[[str, str], None]


def default_socket() -> str:
    """$SPECULA_SOCKET when set, else /run/specula/speculad.sock."""
    return os.environ.get("SPECULA_SOCKET") or DEFAULT_SOCKET


def _start_hint(path: str) -> str:
    if path == DEFAULT_SOCKET:
        return "start it with `systemctl start speculad` (or run `speculad` as root)"
    return f"start it with `speculad --socket {path}`, or point SPECULA_SOCKET at a running one"


class Client:
    """A connection to speculad. ``timeout`` (seconds) bounds each call; None waits forever
    (a commit blocks as long as its command runs)."""

    def __init__(self, socket: Optional[str] = None, timeout: Optional[float] = None) -> None:
        self.socket_path = socket or default_socket()
        self.timeout = timeout
        self._sock: Optional[_socket.socket] = None
        self._buf = b""
        self._next_id = 1

    # ------------------------------------------------------------ transport

    def connect(self) -> "Client":
        if self._sock is not None:
            return self
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            s.connect(self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as e:
            s.close()
            raise errors.Unavailable(f"speculad is not running (nothing listens on {self.socket_path})",
                                     errno=e.errno or 0, hint=_start_hint(self.socket_path)) from None
        except PermissionError as e:
            s.close()
            raise errors.PermissionDenied(f"no permission to connect to {self.socket_path}", errno=e.errno or 0,
                                          hint='run as root or as a member of the "specula" group') from None
        self._sock = s
        self._buf = b""
        return self

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "Client":
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _gone(self, method: str, why: str) -> errors.Unavailable:
        self.close()
        return errors.Unavailable(f"{method}: speculad closed the connection ({why})",
                                  hint=_start_hint(self.socket_path), method=method)

    def call(self, method: str, params: Optional[dict[str, Any]] = None,
             on_notification: Optional[NotificationHandler] = None) -> Any:
        """One raw call: the reply's ``result``, or the daemon's error raised.

        Notifications (a ``method`` and no ``id``) that arrive before the reply
        go to ``on_notification(method, params)`` in order, else are skipped.
        If the handler raises, the connection is closed (the rest of the
        call's messages would be read as the next call's) and the exception
        propagates; the daemon finishes the call regardless."""
        self.connect()
        assert self._sock is not None
        request_id = self._next_id
        self._next_id += 1
        line = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass") + b"\n"
        self._sock.settimeout(self.timeout)
        try:
            self._sock.sendall(line)
        except OSError as e:
            raise self._gone(method, f"send: {e}") from None
        while True:
            message = self._read_message(method)
            if "method" in message and "id" not in message:
                if on_notification is not None:
                    try:
                        on_notification(str(message["method"]), message.get("params"))
                    except BaseException:
                        self.close()
                        raise
                continue
            rid = message.get("id")
            if rid == request_id or rid == str(request_id):
                if "error" in message:
                    raise errors.from_reply(message["error"], method)
                return message.get("result")
            if rid is None and "error" in message:  # a refusal the daemon could not attribute
                raise errors.from_reply(message["error"], method)

    def _read_message(self, method: str) -> dict[str, Any]:
        """The next JSON object the daemon sent (blank lines skipped)."""
        assert self._sock is not None
        while True:
            nl = self._buf.find(b"\n")
            while nl < 0:
                if len(self._buf) > MAX_MESSAGE_BYTES:
                    self.close()
                    raise errors.Internal(f"{method}: reply exceeds {MAX_MESSAGE_BYTES} bytes", method=method)
                try:
                    chunk = self._sock.recv(65536)
                except _socket.timeout:
                    # A late reply would be read as the next call's: the connection is done.
                    self.close()
                    raise errors.DeadlineExceeded(f"{method}: no reply from speculad within {self.timeout} s",
                                                  method=method) from None
                except OSError as e:
                    raise self._gone(method, f"recv: {e}") from None
                if not chunk:
                    raise self._gone(method, "did it stop or crash? see its log")
                self._buf += chunk
                nl = self._buf.find(b"\n")
            raw, self._buf = self._buf[:nl], self._buf[nl + 1:]
            if not raw.strip():
                continue
            try:
                message = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                message = None
            if not isinstance(message, dict):
                # What else the call sent cannot be trusted to line up: the connection is done.
                self.close()
                raise errors.ProtocolError(f"{method}: the daemon sent a line that is not a JSON object",
                                           method=method)
            return message

    # ------------------------------------------------------------ daemon.*

    def ping(self) -> bool:
        return bool(self.call("daemon.ping").get("pong"))

    def version(self) -> Version:
        return decode(Version, self.call("daemon.version"))

    def methods(self) -> list[str]:
        return list(self.call("daemon.methods"))

    # ------------------------------------------------------------ session.*

    def create_session(self, base: str = "/", target: str = "layer", policy: Optional[str] = None,
                       name: Optional[str] = None,
                       speculation: Union[None, str, dict[str, Any], SpeculationConfig] = None) -> str:
        """Creates a session; returns its id. ``policy``: a policy file (made absolute) or a shipped name.

        ``speculation`` turns on transparent speculation: a speculator name
        ("builtin"), a dict of session.create's speculation fields
        ({"speculator": "builtin", "k": 3}) or a SpeculationConfig; the
        daemon then launches the likely next commands itself, and later
        ``commit``s of them are hits."""
        params: dict[str, Any] = {"base": os.path.abspath(base), "target": target}
        if isinstance(speculation, str):
            params["speculation"] = {"speculator": speculation}
        elif isinstance(speculation, SpeculationConfig):
            params["speculation"] = {k: v for k, v in dataclasses.asdict(speculation).items() if v != ""}
        elif speculation is not None:
            params["speculation"] = dict(speculation)
        if policy:
            params["policy"] = os.path.abspath(policy) if os.path.exists(policy) else policy
        if name:
            params["name"] = name
        return str(self.call("session.create", params)["session"])

    def sessions(self) -> list[SessionInfo]:
        return decode_list(SessionInfo, self.call("session.list"))

    def show_session(self, session: str) -> SessionInfo:
        return decode(SessionInfo, self.call("session.show", {"session": session}))

    def destroy_session(self, session: str) -> None:
        self.call("session.destroy", {"session": session})

    def rollback(self, session: str, checkpoint: str) -> str:
        """Moves the session's head back to ``checkpoint``; returns the new head."""
        return str(self.call("session.rollback", {"session": session, "checkpoint": checkpoint})["head"])

    # ------------------------------------------------------------ action.*

    @staticmethod
    def _action(session: str, command: str, timeout_ms: int) -> dict[str, Any]:
        params: dict[str, Any] = {"session": session, "command": command}
        if timeout_ms:
            params["timeout_ms"] = int(timeout_ms)
        return params

    def speculate(self, session: str, command: str, timeout_ms: int = 0) -> str:
        """Starts a branch running ``command`` from the head; returns its id at once."""
        return str(self.call("action.speculate", self._action(session, command, timeout_ms))["branch"])

    def commit(self, session: str, command: str, timeout_ms: int = 0,
               on_output: Optional[OutputHandler] = None) -> CommitResult:
        """The authoritative action: a matching branch is promoted (hit), else the command runs.

        With ``on_output`` the daemon streams: ``on_output(stream, data)`` is
        called with each chunk as the command writes it (a hit's whole output
        at once, right before the reply), all before this returns; a stream's
        chunks, concatenated, equal the result's ``stdout`` / ``stderr``. A
        malformed chunk raises ProtocolError (and closes the connection)."""
        params = self._action(session, command, timeout_ms)
        if on_output is None:
            return decode(CommitResult, self.call("action.commit", params))
        params["stream"] = True

        def dispatch(method: str, notification: Any) -> None:
            if method != OUTPUT_METHOD:
                return  # another notification: nothing of this call's
            try:
                chunk = OutputChunk.from_params(notification)
            except ValueError as e:
                raise errors.ProtocolError(str(e), method="action.commit") from None
            if chunk.session != session:
                raise errors.ProtocolError(f"{OUTPUT_METHOD}: a chunk of session {chunk.session!r} "
                                           f"in a commit of {session!r}", method="action.commit")
            branches.add(chunk.branch)
            on_output(chunk.stream, chunk.data)

        branches: set[str] = set()
        result = decode(CommitResult, self.call("action.commit", params, on_notification=dispatch))
        if branches - {result.branch}:
            # The reply was read, so the connection is still in step; what was
            # printed may belong to another run, which the caller must know.
            raise errors.ProtocolError(f"{OUTPUT_METHOD}: chunks of branch(es) {sorted(branches - {result.branch})} "
                                       f"in a commit whose reply is branch {result.branch!r}", method="action.commit")
        return result

    run = commit

    def abort(self, session: str) -> int:
        """Discards every live branch of the session; returns how many."""
        return int(self.call("action.abort", {"session": session})["discarded"])

    # ------------------------------------------------------------ branch.* / checkpoint.*

    def branches(self, session: str) -> list[BranchSummary]:
        return decode_list(BranchSummary, self.call("branch.list", {"session": session}))

    def show_branch(self, branch: str) -> BranchDetail:
        return decode(BranchDetail, self.call("branch.show", {"branch": branch}))

    def diff(self, branch: Optional[str] = None, checkpoint: Optional[str] = None) -> BranchDiff | CheckpointDiff:
        """What a live branch changed (branch.diff), or a checkpoint relative to its parent (checkpoint.diff)."""
        if (branch is None) == (checkpoint is None):
            raise errors.InvalidArgument("diff: give exactly one of branch and checkpoint")
        if branch is not None:
            return decode(BranchDiff, self.call("branch.diff", {"branch": branch}))
        return decode(CheckpointDiff, self.call("checkpoint.diff", {"checkpoint": checkpoint}))

    def checkpoints(self, session: str) -> list[Checkpoint]:
        return decode_list(Checkpoint, self.call("checkpoint.list", {"session": session}))

    def show_checkpoint(self, checkpoint: str) -> Checkpoint:
        return decode(Checkpoint, self.call("checkpoint.show", {"checkpoint": checkpoint}))

    def mount(self, checkpoint: str, directory: str) -> None:
        """Mounts a read-only view of the checkpoint's files at ``directory`` (existing, empty)."""
        self.call("checkpoint.mount", {"checkpoint": checkpoint, "dir": os.path.abspath(directory)})

    def umount(self, directory: str) -> None:
        self.call("checkpoint.umount", {"dir": os.path.abspath(directory)})

    # ------------------------------------------------------------ sessions as objects

    def session(self, base: str = "/", target: str = "layer", policy: Optional[str] = None,
                name: Optional[str] = None,
                speculation: Union[None, str, dict[str, Any], SpeculationConfig] = None) -> "Session":
        """A new session as an object; ``with client.session() as s:`` destroys it at the end."""
        return Session(self, self.create_session(base, target, policy, name, speculation), owned=True)

    def attach(self, session: str) -> "Session":
        """An existing session as an object (never destroyed by the context manager)."""
        self.show_session(session)
        return Session(self, session, owned=False)


class Session:
    """One session: the calls of Client bound to its id."""

    def __init__(self, client: Client, session_id: str, owned: bool = False) -> None:
        self.client = client
        self.id = session_id
        self.owned = owned

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.destroy()

    def __repr__(self) -> str:
        return f"Session({self.id!r})"

    def info(self) -> SessionInfo:
        return self.client.show_session(self.id)

    def run(self, command: str, timeout_ms: int = 0, on_output: Optional[OutputHandler] = None) -> CommitResult:
        """Client.commit in this session; ``on_output(stream, data)`` streams the output."""
        return self.client.commit(self.id, command, timeout_ms, on_output)

    commit = run

    def spec(self, command: str, timeout_ms: int = 0) -> str:
        return self.client.speculate(self.id, command, timeout_ms)

    speculate = spec

    def abort(self) -> int:
        return self.client.abort(self.id)

    def branches(self) -> list[BranchSummary]:
        return self.client.branches(self.id)

    def log(self) -> list[Checkpoint]:
        return self.client.checkpoints(self.id)

    checkpoints = log

    def head(self) -> str:
        return self.info().head

    def diff(self, branch: Optional[str] = None, checkpoint: Optional[str] = None) -> BranchDiff | CheckpointDiff:
        return self.client.diff(branch=branch, checkpoint=checkpoint)

    def rollback(self, checkpoint: str) -> str:
        return self.client.rollback(self.id, checkpoint)

    def mount(self, checkpoint: str, directory: str) -> None:
        self.client.mount(checkpoint, directory)

    def destroy(self) -> None:
        if self.owned:
            self.client.destroy_session(self.id)
            self.owned = False
