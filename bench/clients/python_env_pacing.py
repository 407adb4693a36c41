#!/usr/bin/env python3
"""Real corpus trajectories through a client, transparent speculation off vs on.

docs/benchmarks.md "Clients: MCP and Python". One speculad; for each chosen
trajectory of ../shared/trajectories/swe-mini-deepseek (read in place, never
copied), the agent loop is the trajectory's: think, then run the recorded
command, for every step. Through

  env  specula.minisweagent.SpeculaEnvironment (the Python client), and
  mcp  `specula mcp` over stdio (JSON-RPC driven from here, --mcp),

each once with speculation off and once with the session's transparent
speculation on (speculation: builtin, k=3, the daemon's launch rule), in an
order that alternates per trajectory. Prints, per run: wall time, the time
the loop waited on commands, hits, saved time, branches the speculator
launched and the run time of those it wasted (discarded or failed; a branch
killed before it finished has no run time and is counted apart).

Think time: the corpus records none (its think_ms are placeholders, see its
README), so it is the project's modelled one (agents/replay_actor.h
kModelled): 2000 ms + 40 ms per KiB of history the model reads (task, every
earlier command and its output), times --scale. A trajectory whose steps
carry think_ms > 0 uses those instead.

    sudo python3 bench/clients/python_env_pacing.py --speculad build/bin/speculad \\
        --trajectories 2 --scale 0.1 [--launch all] [--mcp [--no-env] --specula build/bin/specula] [--json]

Benchmarks never assert; a step whose output or exit code differs between
off and on is reported (it should not happen).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Protocol

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "python"))

import specula  # noqa: E402
from specula.minisweagent import SpeculaEnvironment  # noqa: E402

TRAJECTORIES = os.environ.get("SPECULA_SHARED_TRAJECTORIES") or os.path.join(REPO, "..", "shared", "trajectories")
CORPUS = "swe-mini-deepseek"
WORK = "/testbed"  # the trajectories' work dir, created inside the session only
# As python/tests/test_client_e2e.py: steps that would reach the network or
# print what differs between two runs of the same state are not replayed.
NOT_REPLAYABLE = re.compile(r"\b(pip3?|conda|apt(-get)?|curl|wget|npm|date|sleep|ps|top)\b|"
                            r"\bgit (clone|fetch|pull|push)\b|\bls -[a-zA-Z]*l|\bstat\b")
SPECULATION = {"speculator": "builtin", "k": 3}
BASE_THINK_MS = 2000.0
THINK_MS_PER_KIB = 40.0


@dataclass
class Step:
    command: str
    think_ms: float  # recorded (0: none)


@dataclass
class Trajectory:
    name: str
    task: str
    steps: list[Step]


def load(path: str, max_steps: int) -> Trajectory:
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    head = lines[0]
    steps = [Step(s["command"], float(s.get("think_ms", 0))) for s in lines[1:]
             if not NOT_REPLAYABLE.search(s["command"])]
    return Trajectory(head["name"], head.get("task", ""), steps[:max_steps] if max_steps else steps)


def choose(n: int, names: list[str]) -> list[str]:
    """`names` given, else n files spread evenly over the sorted corpus (several tasks)."""
    folder = os.path.join(TRAJECTORIES, CORPUS)
    if names:
        return [os.path.join(folder, n if n.endswith(".jsonl") else n + ".jsonl") for n in names]
    files = sorted(f for f in os.listdir(folder) if f.endswith(".jsonl"))
    stride = max(1, len(files) // max(1, n))
    return [os.path.join(folder, f) for f in files[::stride][:n]]


def think_ms(step: Step, history_bytes: int, scale: float) -> float:
    ms = step.think_ms if step.think_ms > 0 else BASE_THINK_MS + THINK_MS_PER_KIB * history_bytes / 1024.0
    return ms * scale


class Backend(Protocol):
    session_id: str

    def execute(self, command: str) -> tuple[str, int, bool, float]: ...  # output, returncode, hit, saved_ms
    def close(self) -> None: ...


class EnvBackend:
    def __init__(self, socket: str, speculation: Optional[dict[str, Any]]) -> None:
        self.env = SpeculaEnvironment(socket=socket, speculation=speculation, timeout=120,
                                      env={"PYTHONHASHSEED": "0"})  # the scripts print sets: one order
        self.session_id = self.env.session.id

    def execute(self, command: str) -> tuple[str, int, bool, float]:
        r = self.env.execute(command)
        return r["output"], r["returncode"], bool(r["hit"]), float(r["saved_ms"])

    def close(self) -> None:
        self.env.close()


class McpBackend:
    """`specula mcp` as an agent's MCP client drives it: newline-delimited JSON-RPC on stdio."""

    def __init__(self, cli: str, socket: str, speculation: Optional[dict[str, Any]]) -> None:
        args = [cli, "--socket", socket, "mcp"]
        self.own_session: Optional[str] = None
        if speculation and set(speculation) - {"speculator", "k"}:
            # `specula mcp` has flags for the speculator and k only: a session
            # with more (launch: all) is made here and served with --session.
            with specula.Client(socket) as c:
                self.own_session = c.create_session("/", speculation=speculation)
            args += ["--session", self.own_session]
        elif speculation:
            args += ["--speculation", speculation["speculator"], "--k", str(speculation["k"])]
        self.socket = socket
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.next_id = 1
        self.call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "specula-bench", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.session_id = self.tool("checkpoints", {})["session"]
        self.tool("bash", {"command": "export PYTHONHASHSEED=0"})

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def call(self, method: str, params: dict[str, Any]) -> Any:
        request_id = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"specula mcp exited during {method}")
            message = json.loads(line)
            if message.get("id") != request_id:
                continue  # a notification (progress, log) or a server request we do not answer
            if "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            return message["result"]

    def tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = self.call("tools/call", {"name": name, "arguments": arguments | ({"timeout_ms": 120000}
                                                                                 if name == "bash" else {})})
        if result.get("isError"):
            raise RuntimeError(f"{name}: {result.get('content')}")
        return result["structuredContent"]

    def execute(self, command: str) -> tuple[str, int, bool, float]:
        r = self.tool("bash", {"command": command})
        code = r["exit_code"] if not r.get("signal") else 128 + r["signal"]
        return r["stdout"] + r["stderr"], code, bool(r["hit"]), float(r.get("saved_ms", 0))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # EOF: the server destroys its session and exits
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.own_session:  # a --session session is never the server's to destroy
            with specula.Client(self.socket) as c:
                c.destroy_session(self.own_session)


@dataclass
class Run:
    trajectory: str
    client: str
    speculation: bool
    steps: int = 0
    wall_s: float = 0.0
    think_s: float = 0.0
    waited_s: float = 0.0  # time in execute(): what speculation can hide
    hits: int = 0
    saved_ms: float = 0.0
    launched: int = 0
    wasted_ms: float = 0.0      # run time of speculated branches never promoted
    killed_unfinished: int = 0  # speculated branches discarded before they finished
    outputs: list[tuple[str, int]] = field(default_factory=list)
    hit_steps: list[bool] = field(default_factory=list)


def replay(client: specula.Client, backend: Backend, t: Trajectory, run: Run, scale: float) -> Run:
    backend.execute(f"mkdir -p {WORK} && cd {WORK}")
    history = len(t.task.encode())
    start = time.monotonic()
    for step in t.steps:
        pause = think_ms(step, history, scale) / 1000.0
        time.sleep(pause)  # the model thinks; the daemon's speculation runs meanwhile
        run.think_s += pause
        t0 = time.monotonic()
        output, code, hit, saved = backend.execute(step.command)
        run.waited_s += time.monotonic() - t0
        run.steps += 1
        run.hits += hit
        run.saved_ms += saved
        run.outputs.append((output, code))
        run.hit_steps.append(bool(hit))
        history += len(step.command.encode()) + len(output.encode())
    run.wall_s = time.monotonic() - start
    for b in client.branches(backend.session_id):
        if b.origin is None:
            continue
        run.launched += 1
        if b.state == "promoted":
            continue
        if b.result is not None:
            run.wasted_ms += b.result.duration_ms
        elif b.state in ("discarded", "failed"):
            run.killed_unfinished += 1
    return run


def start_daemon(speculad: str, dir: str) -> tuple[subprocess.Popen, str]:
    socket = os.path.join(dir, "d.sock")
    log = open(os.path.join(dir, "d.log"), "wb")
    proc = subprocess.Popen([speculad, "--socket", socket, "--state-dir", os.path.join(dir, "state")],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while True:
        try:
            with specula.Client(socket, timeout=5) as c:
                if c.ping():
                    return proc, socket
        except specula.Unavailable:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError("speculad did not start:\n" + open(log.name).read())
        time.sleep(0.05)


def stop_daemon(proc: subprocess.Popen, dir: str) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(dir + "/")]
    for point in reversed(points):
        subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(dir, ignore_errors=True)


def summary(runs: list[Run]) -> dict[str, Any]:
    keys = ("steps", "wall_s", "think_s", "waited_s", "hits", "saved_ms", "launched", "wasted_ms",
            "killed_unfinished")
    return {k: round(sum(getattr(r, k) for r in runs), 3) for k in keys}


def print_table(runs: list[Run]) -> None:
    print(f"{'trajectory':44} {'client':6} {'spec':4} {'steps':>5} {'wall s':>7} {'waited s':>8} {'hits':>4} "
          f"{'saved s':>7} {'launched':>8} {'wasted s':>8} {'killed':>6}")
    for r in runs:
        print(f"{r.trajectory[:44]:44} {r.client:6} {'on' if r.speculation else 'off':4} {r.steps:5d} "
              f"{r.wall_s:7.1f} {r.waited_s:8.2f} {r.hits:4d} {r.saved_ms / 1000:7.2f} {r.launched:8d} "
              f"{r.wasted_ms / 1000:8.2f} {r.killed_unfinished:6d}")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speculad", default=os.environ.get("SPECULAD") or os.path.join(REPO, "build/bin/speculad"))
    ap.add_argument("--specula", default=os.environ.get("SPECULA_CLI") or os.path.join(REPO, "build/bin/specula"))
    ap.add_argument("--trajectories", type=int, default=2, help="how many, spread over the corpus")
    ap.add_argument("--trajectory", action="append", default=[], help="this one (name), instead; repeatable")
    ap.add_argument("--scale", type=float, default=0.1, help="multiplies the think time")
    ap.add_argument("--max-steps", type=int, default=0, help="replay at most this many steps of each (0: all)")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--launch", default="rule", choices=("rule", "all"))
    ap.add_argument("--mcp", action="store_true", help="also through `specula mcp` over stdio")
    ap.add_argument("--no-env", action="store_true", help="with --mcp: through `specula mcp` only")
    ap.add_argument("--agent", default="", help="the sessions' speculation agent (the daemon learns it across "
                    "sessions; default: unnamed, which is learned the same way)")
    ap.add_argument("--agent-per-trajectory", action="store_true",
                    help="a distinct agent per trajectory: nothing is learned across sessions")
    ap.add_argument("--json", action="store_true", help="print the runs and totals as JSON too")
    args = ap.parse_args(argv)
    if os.path.exists(WORK):
        print(f"{WORK} exists on the host: the replay would read it", file=sys.stderr)
        return 2
    speculation = SPECULATION | {"k": args.k} | ({"launch": "all"} if args.launch == "all" else {})
    trajectories = [load(p, args.max_steps) for p in choose(args.trajectories, args.trajectory)]
    clients = ([] if args.no_env and args.mcp else ["env"]) + (["mcp"] if args.mcp else [])
    dir = tempfile.mkdtemp(prefix="specula-bench-clients-")
    proc, socket = start_daemon(args.speculad, dir)
    runs: list[Run] = []
    try:
        with specula.Client(socket) as client:
            for i, t in enumerate(trajectories):
                for name in clients:
                    for on in ((False, True) if i % 2 == 0 else (True, False)):  # alternate who goes first
                        agent = f"trajectory-{i}" if args.agent_per_trajectory else args.agent
                        spec = (speculation | ({"agent": agent} if agent else {})) if on else None
                        backend: Backend = (EnvBackend(socket, spec) if name == "env"
                                            else McpBackend(args.specula, socket, spec))
                        try:
                            run = replay(client, backend, t, Run(t.name, name, on), args.scale)
                        finally:
                            backend.close()
                        runs.append(run)
                        print(f"  {t.name} {name} speculation {'on' if on else 'off'}: {run.steps} steps, "
                              f"wall {run.wall_s:.1f} s, waited {run.waited_s:.2f} s, {run.hits} hits",
                              file=sys.stderr)
    finally:
        stop_daemon(proc, dir)
    print(f"think time: {'recorded' if any(s.think_ms > 0 for t in trajectories for s in t.steps) else 'modelled'}"
          f", scale {args.scale}; speculation {json.dumps(speculation)}")
    print_table(runs)
    differing = 0
    for name in clients:
        for t in trajectories:
            pair = {r.speculation: r for r in runs if r.client == name and r.trajectory == t.name}
            for i, (a, b) in enumerate(zip(pair[False].outputs, pair[True].outputs)):
                if a == b:
                    continue
                differing += 1
                # Which step, whether the "on" run's was a hit, and the first
                # line that differs: a nondeterministic command (dates, pids)
                # or a real loss.
                la, lb = a[0].splitlines(), b[0].splitlines()
                j = next((k for k in range(max(len(la), len(lb)))
                          if (la[k] if k < len(la) else None) != (lb[k] if k < len(lb) else None)), 0)
                print(f"  differs: {t.name} step {i} ({'hit' if pair[True].hit_steps[i] else 'miss'}) "
                      f"{t.steps[i].command[:120]!r}: exit {a[1]} vs {b[1]}; line {j}: "
                      f"{(la[j] if j < len(la) else '<none>')[:160]!r} vs {(lb[j] if j < len(lb) else '<none>')[:160]!r}")
        off = summary([r for r in runs if r.client == name and not r.speculation])
        on = summary([r for r in runs if r.client == name and r.speculation])
        print(f"{name}: total wall off {off['wall_s']:.1f} s / on {on['wall_s']:.1f} s "
              f"({on['wall_s'] / off['wall_s']:.3f}x); waited on commands off {off['waited_s']:.2f} s / "
              f"on {on['waited_s']:.2f} s ({on['waited_s'] / max(off['waited_s'], 1e-9):.3f}x); "
              f"hits {on['hits']}/{on['steps']}; launched {on['launched']}, wasted branch time "
              f"{on['wasted_ms'] / 1000:.2f} s (+{on['killed_unfinished']} killed unfinished)")
    print(f"steps whose output or exit code differ between off and on: {differing}")
    if args.json:
        print(json.dumps([{k: v for k, v in asdict(r).items() if k not in ("outputs", "hit_steps")} for r in runs]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
