"""An environment with the interface mini-swe-agent uses, backed by a specula session.

Point an existing mini-swe-agent config at it by dotted path, without
patching mini-swe-agent (docs/python.md)::

    environment:
      environment_class: specula.minisweagent.SpeculaEnvironment
      base: /
      policy: sysadmin

``execute(command, cwd="", timeout=None)`` commits the command in the session
and returns ``{"output", "returncode"}`` (plus specula's ``hit``, ``saved_ms``
and ``checkpoint``; ``on_output=callable(stream, data)`` streams the output as
it is written); ``speculate(command)`` starts a branch for a command the
agent is likely to run next, so that its ``execute`` is a hit.
"""

from __future__ import annotations

import platform
import shlex
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .client import Client, OutputHandler


@dataclass
class SpeculaEnvironmentConfig:
    socket: Optional[str] = None     # default: $SPECULA_SOCKET or /run/specula/speculad.sock
    session: Optional[str] = None    # attach to this session instead of creating one
    base: str = "/"
    target: str = "layer"
    policy: Optional[str] = None
    name: Optional[str] = None
    cwd: str = ""                    # default working directory of commands ("" = the session's)
    timeout: int = 0                 # seconds per command (0: the policy's limit)
    env: dict[str, str] = field(default_factory=dict)  # exported once, at the start of the session
    keep_session: bool = False       # keep a created session after close()
    # Transparent speculation in a created session: "builtin" or a dict of
    # session.create's speculation fields; None: off.
    speculation: Any = None


class SpeculaEnvironment:
    """``on_output(stream, data)``, if given, receives each command's output as it is
    written (streaming commits); it is not part of the config, which
    get_template_vars() renders."""

    def __init__(self, *, config_class: type = SpeculaEnvironmentConfig,
                 on_output: Optional[OutputHandler] = None, **kwargs: Any) -> None:
        self.config = config_class(**kwargs)
        self.on_output = on_output
        self.client = Client(self.config.socket)
        if self.config.session:
            self.session = self.client.attach(self.config.session)
        else:
            self.session = self.client.session(self.config.base, self.config.target, self.config.policy,
                                               self.config.name, self.config.speculation)
        if self.config.env:
            exports = "; ".join(f"export {k}={shlex.quote(v)}" for k, v in self.config.env.items())
            self.session.run(exports)

    def _command(self, command: str, cwd: str) -> str:
        cwd = cwd or self.config.cwd
        # A subshell, so that an explicit cwd does not move the session's own.
        return f"(cd {shlex.quote(cwd)} && {command})" if cwd else command

    def execute(self, command: str, cwd: str = "", *, timeout: Optional[int] = None,
                on_output: Optional[OutputHandler] = None) -> dict[str, Any]:
        seconds = self.config.timeout if timeout is None else timeout
        result = self.session.run(self._command(command, cwd), timeout_ms=int(seconds * 1000),
                                  on_output=on_output or self.on_output)
        output = result.stdout + result.stderr
        if "timed_out" in result.flags:
            # What mini-swe-agent's agents catch for a command that ran too long.
            raise subprocess.TimeoutExpired(command, seconds, output=output)
        returncode = result.exit_code if result.signal == 0 else 128 + result.signal
        return {"output": output, "returncode": returncode, "hit": result.hit, "saved_ms": result.saved_ms,
                "checkpoint": result.head}

    def speculate(self, command: str, cwd: str = "", *, timeout: Optional[int] = None) -> str:
        """Starts a branch for a likely next command; its execute() is then a hit."""
        seconds = self.config.timeout if timeout is None else timeout
        return self.session.spec(self._command(command, cwd), timeout_ms=int(seconds * 1000))

    def get_template_vars(self) -> dict[str, Any]:
        uname = platform.uname()
        return asdict(self.config) | {"session": self.session.id, "system": uname.system, "release": uname.release,
                                      "version": uname.version, "machine": uname.machine}

    def close(self) -> None:
        if self.session is not None and not self.config.keep_session:
            self.session.destroy()
        self.client.close()

    def __enter__(self) -> "SpeculaEnvironment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
