"""specula: a Python client of speculad (docs/python.md). Standard library only.

    from specula import Client
    with Client() as c, c.session(base="/") as s:
        s.spec("make test")          # a branch starts now
        r = s.run("make test")       # the authoritative action: hit
        print(r.hit, r.exit_code, r.stdout)
        s.run("make", on_output=lambda stream, data: print(data, end=""))  # streamed
"""

from .client import DEFAULT_SOCKET, Client, NotificationHandler, OutputHandler, Session, default_socket
from .errors import (Aborted, AlreadyExists, DataLoss, DeadlineExceeded, FailedPrecondition, Internal,
                     InvalidArgument, NotFound, PermissionDenied, ProtocolError, ResourceExhausted, SpeculaError,
                     Unavailable)
from .wire import (BranchDetail, BranchDiff, BranchOrigin, BranchResult, BranchSummary, Checkpoint, CheckpointDiff,
                    CommitResult, DiffFile, JournalEntry, LossyEffect, OutputChunk, SessionInfo, SpeculationConfig,
                    SpeculationStatus, SyscallEvent, Version)

__all__ = [
    "Client", "Session", "DEFAULT_SOCKET", "default_socket", "OutputHandler", "NotificationHandler",
    "SpeculaError", "InvalidArgument", "NotFound", "AlreadyExists", "PermissionDenied", "FailedPrecondition",
    "Unavailable", "ResourceExhausted", "DeadlineExceeded", "Aborted", "DataLoss", "Internal", "ProtocolError",
    "Version", "SessionInfo", "LossyEffect", "CommitResult", "BranchResult", "BranchSummary", "JournalEntry",
    "SyscallEvent", "BranchDetail", "DiffFile", "BranchDiff", "CheckpointDiff", "Checkpoint",
    "SpeculationConfig", "SpeculationStatus", "BranchOrigin", "OutputChunk",
]
__version__ = "0.1.0"
