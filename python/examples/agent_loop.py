#!/usr/bin/env python3
"""A mini-swe-agent-style agent loop on specula (docs/python.md).

The loop is mini-swe-agent's: the model answers with one ```bash block per
turn, the environment runs it, the output goes back into the conversation,
until the model prints COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT. The
environment is specula's (specula.minisweagent.SpeculaEnvironment), so
every command runs in a checkpointed session, and while the model "thinks"
the loop speculates the command it expects next (a bigram of the commands
seen so far, or --oracle: the scripted model's own next command, to show
what a good speculator buys). A command that fails makes the loop roll the
session back to the checkpoint before it.

The model is scripted by default (no network): a list of replies. With
--openai it calls an OpenAI-compatible chat-completions endpoint
($OPENAI_BASE_URL, $OPENAI_API_KEY, --model) through urllib.

    sudo python3 python/examples/agent_loop.py --socket /run/specula/speculad.sock --oracle
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from specula.minisweagent import SpeculaEnvironment  # noqa: E402

SYSTEM = ("You administer a Linux machine through a bash shell. Answer with exactly one ```bash block per turn. "
          "When done, run `echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT`.")
DONE = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"

# A small sysadmin task, as a scripted model would play it.
SCRIPT = [
    "mkdir -p /srv/app && cd /srv/app && printf 'port=80\\n' > app.conf && cat app.conf",
    "grep -n port /srv/app/app.conf",
    "sed -i 's/port=80/port=8080/' /srv/app/app.conf",
    "grep -n port /srv/app/app.conf",
    "test -f /srv/app/missing.conf",           # fails: the loop rolls back
    "printf 'ok\\n' > /srv/app/STATUS && cat /srv/app/STATUS",
    "grep -n port /srv/app/app.conf",
    f"echo {DONE}",
]


class ScriptedModel:
    def __init__(self, commands: list[str], think_s: float) -> None:
        self.commands = commands
        self.think_s = think_s
        self.turn = 0

    def peek(self) -> str | None:
        return self.commands[self.turn] if self.turn < len(self.commands) else None

    def query(self, messages: list[dict]) -> str:
        time.sleep(self.think_s)  # the main model's latency, which speculation hides
        command = self.commands[min(self.turn, len(self.commands) - 1)]
        self.turn += 1
        return f"THOUGHT: next step.\n```bash\n{command}\n```"


class OpenAIModel:
    def __init__(self, model: str) -> None:
        self.model = model
        self.url = os.environ.get("OPENAI_BASE_URL", "").rstrip("/") + "/chat/completions"
        self.key = os.environ.get("OPENAI_API_KEY", "")

    def peek(self) -> str | None:
        return None

    def query(self, messages: list[dict]) -> str:
        body = json.dumps({"model": self.model, "messages": messages}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {self.key}"})
        with urllib.request.urlopen(req, timeout=300) as resp:
            return json.load(resp)["choices"][0]["message"]["content"]


def parse_action(reply: str) -> str | None:
    blocks = re.findall(r"```bash\s*\n(.*?)\n```", reply, re.DOTALL)
    return blocks[0].strip() if len(blocks) == 1 else None


def predict(history: list[str]) -> str | None:
    """The command that followed the last command the previous time it ran (a bigram)."""
    if not history:
        return None
    for i in range(len(history) - 2, -1, -1):
        if history[i] == history[-1]:
            return history[i + 1]
    return None


def run(env: SpeculaEnvironment, model, oracle: bool, max_steps: int = 30, out=sys.stdout) -> dict:
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": "Move the app at /srv/app to port 8080 and mark it ok."}]
    history: list[str] = []
    stats = {"steps": 0, "hits": 0, "saved_ms": 0.0, "rollbacks": 0, "speculated": 0}
    last_good = env.session.head()
    for _ in range(max_steps):
        guess = model.peek() if oracle else predict(history)
        if guess and DONE not in guess:
            env.speculate(guess)  # runs while the model thinks
            stats["speculated"] += 1
        reply = model.query(messages)
        messages.append({"role": "assistant", "content": reply})
        command = parse_action(reply)
        if command is None:
            messages.append({"role": "user", "content": "Answer with exactly one ```bash block."})
            continue
        result = env.execute(command)
        stats["steps"] += 1
        stats["hits"] += bool(result["hit"])
        stats["saved_ms"] += result["saved_ms"]
        history.append(command)
        print(f"$ {command}\n{result['output']}[exit {result['returncode']}"
              f"{', hit' if result['hit'] else ''}, checkpoint {result['checkpoint']}]", file=out)
        if DONE in result["output"]:
            break
        if result["returncode"] != 0:
            env.session.rollback(last_good)  # undo whatever the failed command did
            stats["rollbacks"] += 1
            messages.append({"role": "user", "content": f"The command failed (rolled back):\n{result['output']}"})
            continue
        last_good = result["checkpoint"]
        messages.append({"role": "user", "content": f"<returncode>{result['returncode']}</returncode>\n"
                                                    f"<output>\n{result['output']}</output>"})
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default=None, help="speculad's socket (default $SPECULA_SOCKET or the system's)")
    ap.add_argument("--base", default="/", help="the session's base directory")
    ap.add_argument("--policy", default=None)
    ap.add_argument("--oracle", action="store_true", help="speculate the scripted model's own next command")
    ap.add_argument("--think", type=float, default=0.3, help="seconds the scripted model thinks per turn")
    ap.add_argument("--openai", action="store_true", help="use an OpenAI-compatible model instead of the script")
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--json", action="store_true", help="print the stats as JSON")
    args = ap.parse_args(argv)
    model = OpenAIModel(args.model) if args.openai else ScriptedModel(SCRIPT, args.think)
    with SpeculaEnvironment(socket=args.socket, base=args.base, policy=args.policy) as env:
        stats = run(env, model, args.oracle, out=sys.stderr if args.json else sys.stdout)
        stats["session"] = env.session.id
    if args.json:
        print(json.dumps(stats))
    else:
        print(f"{stats['steps']} steps, {stats['hits']} hits, {stats['saved_ms']:.0f} ms saved, "
              f"{stats['rollbacks']} rollbacks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
