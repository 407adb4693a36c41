"""The daemon's replies as dataclasses, mirroring docs/api.md (runtime/api/wire.h).

Decoding is tolerant of absent fields (an older daemon's reply keeps the
defaults) and keeps what it does not know in nothing: unknown fields are
ignored. Ids are strings; times RFC 3339 strings; durations milliseconds.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar

T = TypeVar("T")


def _decode(cls: type[T], data: Any) -> T:
    """A dataclass from a JSON object, recursively; missing fields keep defaults."""
    if data is None:
        return None  # type: ignore[return-value]
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data or data[f.name] is None:
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name])
    return cls(**kwargs)


def _convert(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:  # Optional[X]
        inner = [a for a in args if a is not type(None)][0]
        return None if value is None else _convert(inner, value)
    if origin is list:
        return [_convert(args[0], v) for v in value]
    if dataclasses.is_dataclass(tp):
        return _decode(tp, value)
    if tp is str and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # ids sent as numbers are read as their decimal text
    if tp is float and isinstance(value, (int, float)):
        return float(value)
    return value


@dataclass
class Version:
    version: str = ""
    protocol: int = 1
    pid: int = 0
    socket: str = ""
    state_dir: str = ""
    started: str = ""
    core: bool = True


@dataclass
class SpeculationConfig:
    """session.create's ``speculation`` (docs/api.md "Transparent speculation")."""
    speculator: str = "builtin"  # builtin|openai|none
    k: int = 3
    min_p: float = 0.0
    launch: str = "rule"  # rule|all
    model: str = ""
    endpoint: str = ""
    agent: str = ""  # the agent driving the session: the daemon learns its habits across sessions


@dataclass
class SpeculationStatus:
    config: SpeculationConfig = field(default_factory=SpeculationConfig)
    proposals: int = 0
    launched: int = 0
    hits: int = 0
    cost_ms: float = 0.0
    saving_ms: float = 0.0
    last_error: str = ""
    round_head: str = ""  # the head of the last finished round (docs/api.md)


@dataclass
class SessionInfo:
    """session.show / session.list."""
    session: str = ""
    name: str = ""
    base: str = ""
    target: str = ""
    policy: str = ""
    head: str = ""
    created: str = ""
    checkpoints: int = 0
    live_branches: int = 0
    speculation: Optional[SpeculationStatus] = None  # None: transparent speculation off


@dataclass
class LossyEffect:
    tag: str = ""
    kind: str = ""
    path: str = ""
    rule: str = ""
    compensated: bool = False
    detail: str = ""


@dataclass
class PromoteNote:
    """What a promote onto the base left out (setuid bits, xattrs, fifos...)."""
    path: str = ""
    action: str = ""  # "stripped" | "not applied"
    detail: str = ""


@dataclass
class CommitResult:
    """action.commit: the result of the authoritative action."""
    hit: bool = False
    branch: str = ""
    exit_code: int = -1
    signal: int = 0
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    duration_ms: float = 0.0
    saved_ms: float = 0.0
    head: str = ""
    lossy_effects: list[LossyEffect] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    promote_notes: list[PromoteNote] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.signal == 0

    @property
    def output(self) -> str:
        """stdout then stderr, as a terminal would show them."""
        return self.stdout + self.stderr


OUTPUT_METHOD = "action.output"
OUTPUT_STREAMS = ("stdout", "stderr")


@dataclass
class OutputChunk:
    """action.output: a piece of a streaming commit's output (docs/api.md "Streaming output").

    Sent as a notification before the commit's reply; a stream's chunks,
    concatenated, are exactly the reply's ``stdout`` / ``stderr``."""
    session: str = ""
    branch: str = ""   # == the reply's branch
    stream: str = ""   # "stdout" | "stderr"
    data: str = ""

    @classmethod
    def from_params(cls, params: Any) -> "OutputChunk":
        """Strict, unlike decode(): a chunk the client cannot place would corrupt the
        output it reassembles, so every field must be there with its type."""
        if not isinstance(params, dict):
            raise ValueError(f"{OUTPUT_METHOD}: params is not an object")
        for name in ("session", "branch", "stream", "data"):
            if not isinstance(params.get(name), str):
                raise ValueError(f"{OUTPUT_METHOD}: {name} is missing or not a string")
        if params["stream"] not in OUTPUT_STREAMS:
            raise ValueError(f"{OUTPUT_METHOD}: stream {params['stream']!r} is neither stdout nor stderr")
        return cls(params["session"], params["branch"], params["stream"], params["data"])


@dataclass
class BranchResult:
    exit_code: int = -1
    signal: int = 0
    duration_ms: float = 0.0
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    truncated: bool = False
    stdout: Optional[str] = None
    stderr: Optional[str] = None


@dataclass
class BranchOrigin:
    """Why the daemon launched a branch (transparent speculation)."""
    source: str = ""  # "speculator:builtin", ...
    confidence: float = 0.0
    rule: str = ""


@dataclass
class BranchSummary:
    branch: str = ""
    session: str = ""
    state: str = ""  # starting|running|blocked|done|promoted|discarded|failed
    command: str = ""
    parent_checkpoint: str = ""
    created: str = ""
    result: Optional[BranchResult] = None
    origin: Optional[BranchOrigin] = None  # None: launched by a client


@dataclass
class JournalEntry:
    kind: str = ""
    path: str = ""
    detail: str = ""
    tag: str = ""


@dataclass
class SyscallEvent:
    syscall: str = ""
    detail: str = ""
    state: str = ""


@dataclass
class BranchDetail(BranchSummary):
    journal: list[JournalEntry] = field(default_factory=list)
    deferred: list[SyscallEvent] = field(default_factory=list)
    denied: list[SyscallEvent] = field(default_factory=list)
    lossy_effects: list[LossyEffect] = field(default_factory=list)
    upper_bytes: int = 0
    flags: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass
class DiffFile:
    path: str = ""
    change: str = ""  # added|changed|deleted
    type: str = ""    # file|dir|symlink|other|""
    diff: str = ""


@dataclass
class BranchDiff:
    branch: str = ""
    files: list[DiffFile] = field(default_factory=list)


@dataclass
class CheckpointDiff:
    checkpoint: str = ""
    parent: Optional[str] = None
    files: list[DiffFile] = field(default_factory=list)


@dataclass
class Checkpoint:
    checkpoint: str = ""
    parent: Optional[str] = None  # None for a session's root
    session: str = ""
    command: str = ""
    created: str = ""
    layers: int = 0
    has_process_image: bool = False
    image_bytes: int = 0
    cwd: str = ""


def decode(cls: type[T], data: Any) -> T:
    """Public decoder: ``decode(CommitResult, reply)``."""
    return _decode(cls, data)


def decode_list(cls: type[T], data: Any) -> list[T]:
    if not isinstance(data, list):
        raise TypeError(f"expected a list of {cls.__name__}, got {type(data).__name__}")
    return [_decode(cls, item) for item in data]
