"""The Python client against a real speculad (root; ctest label e2e).

$SPECULAD is the daemon binary (CMake passes it); each test class starts one
daemon on a private socket and state dir and stops it at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import specula  # noqa: E402
from specula.minisweagent import SpeculaEnvironment  # noqa: E402

SPECULAD = os.environ.get("SPECULAD", "")


def mounts_under(path: str) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point == path or point.startswith(path + "/"):
                out.append(point)
    return out


@unittest.skipUnless(os.geteuid() == 0 and SPECULAD, "needs root and $SPECULAD")
class DaemonTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="specula-py-e2e-")
        cls.socket = os.path.join(cls.dir, "d.sock")
        cls.log = open(os.path.join(cls.dir, "d.log"), "wb")
        cls.daemon = subprocess.Popen([SPECULAD, "--socket", cls.socket, "--state-dir", os.path.join(cls.dir, "state"),
                                       "--log-level", "debug"], stdin=subprocess.DEVNULL, stdout=cls.log,
                                      stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                with specula.Client(cls.socket, timeout=5) as c:
                    if c.ping():
                        break
            except specula.Unavailable:
                pass
            if cls.daemon.poll() is not None or time.time() > deadline:
                raise RuntimeError("speculad did not start:\n" + open(cls.log.name).read())
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.send_signal(signal.SIGTERM)
        try:
            cls.daemon.wait(30)
        except subprocess.TimeoutExpired:
            cls.daemon.kill()
            cls.daemon.wait()
        cls.log.close()
        for point in reversed(mounts_under(cls.dir)):
            subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.client = specula.Client(self.socket)
        self.target = f"/opt/specula-py-e2e-{os.getpid()}-{self._testMethodName}"

    def tearDown(self):
        self.client.close()
        self.assertFalse(os.path.exists(self.target), "a layer-target session wrote the host")


class ClientE2E(DaemonTestCase):
    def test_daemon_methods(self):
        self.assertTrue(self.client.ping())
        v = self.client.version()
        self.assertTrue(v.core)
        self.assertEqual(v.socket, self.socket)
        self.assertIn("checkpoint.diff", self.client.methods())

    def test_session_lifecycle_and_errors(self):
        sid = self.client.create_session(name="py-life")
        info = self.client.show_session(sid)
        self.assertEqual((info.session, info.name, info.base, info.target), (sid, "py-life", "/", "layer"))
        self.assertIn(sid, [s.session for s in self.client.sessions()])
        self.client.destroy_session(sid)
        with self.assertRaises(specula.NotFound) as cm:
            self.client.show_session(sid)
        self.assertEqual(cm.exception.kind, "not_found")
        self.assertEqual(cm.exception.code, -32002)
        with self.assertRaises(specula.InvalidArgument):
            self.client.create_session(target="sideways")
        with self.assertRaises(specula.NotFound):
            self.client.create_session(policy="no-such-policy")

    def test_commit_speculate_diff_rollback(self):
        with self.client.session() as s:
            root = s.head()
            r = s.run(f"mkdir -p {self.target} && echo one > {self.target}/f && cat {self.target}/f")
            self.assertIsInstance(r, specula.CommitResult)
            self.assertEqual((r.hit, r.exit_code, r.stdout), (False, 0, "one\n"))
            first = r.head
            d = s.diff(checkpoint=first)
            self.assertIsInstance(d, specula.CheckpointDiff)
            self.assertEqual(d.parent, root)
            self.assertIn((f"{self.target}/f", "added"), [(f.path, f.change) for f in d.files])

            failing = s.run("echo bad >&2; exit 7")
            self.assertEqual((failing.exit_code, failing.stderr, failing.ok), (7, "bad\n", False))

            cmd = f"echo two >> {self.target}/f; cat {self.target}/f"
            branch = s.spec(cmd)
            live = {b.branch: b for b in s.branches()}
            self.assertIn(branch, live)
            self.assertIn(live[branch].state, ("starting", "running", "done"))
            bd = s.diff(branch=branch)
            self.assertIsInstance(bd, specula.BranchDiff)
            hit = s.run(cmd)
            self.assertTrue(hit.hit)
            self.assertEqual(hit.branch, branch)
            self.assertEqual(hit.stdout, "one\ntwo\n")
            detail = self.client.show_branch(branch)
            self.assertEqual(detail.state, "promoted")
            self.assertEqual(detail.reason, "promoted by commit")
            cd = s.diff(checkpoint=hit.head)
            changed = [f for f in cd.files if f.path == f"{self.target}/f"]
            self.assertEqual(changed[0].change, "changed")
            self.assertIn("+two", changed[0].diff)

            log = s.log()
            self.assertEqual([c.checkpoint for c in log][:1], [root])
            self.assertIsNone(log[0].parent)
            self.assertEqual(log[-1].checkpoint, hit.head)
            self.assertEqual(s.rollback(first), first)
            self.assertEqual(s.run(f"cat {self.target}/f").stdout, "one\n")
            with self.assertRaises(specula.NotFound):
                s.rollback("c-nope")
            with self.assertRaises(specula.InvalidArgument):
                s.run("   ")
            sid = s.id
        with self.assertRaises(specula.NotFound):  # the context manager destroyed it
            self.client.show_session(sid)

    def test_checkpoint_diff_of_a_base_target_session_says_why_not(self):
        host = self.target + "-base"  # a base-target session over / writes the host: a scratch path
        try:
            with self.client.session(base="/", target="base") as s:
                r = s.run(f"mkdir -p {host} && echo x > {host}/written")
                with open(os.path.join(host, "written")) as f:
                    self.assertEqual(f.read(), "x\n")
                with self.assertRaises(specula.FailedPrecondition) as cm:
                    s.diff(checkpoint=r.head)
                self.assertIn("branch.diff", cm.exception.hint)
                root = s.diff(checkpoint=s.log()[0].checkpoint)  # the root changed nothing
                self.assertEqual((root.parent, root.files), (None, []))
        finally:
            shutil.rmtree(host, ignore_errors=True)

    def test_mount_a_checkpoint(self):
        with self.client.session() as s:
            r = s.run(f"mkdir -p {self.target} && echo seen > {self.target}/m")
            view = tempfile.mkdtemp(dir=self.dir)
            s.mount(r.head, view)
            try:
                with open(os.path.join(view, self.target.lstrip("/"), "m")) as f:
                    self.assertEqual(f.read(), "seen\n")
            finally:
                self.client.umount(view)
            self.assertEqual(mounts_under(view), [])

    def test_abort_discards_branches(self):
        with self.client.session() as s:
            s.spec("sleep 30")
            self.assertEqual(s.abort(), 1)
            self.assertTrue(all(b.state == "discarded" for b in s.branches()))


class StreamingE2E(DaemonTestCase):
    """action.commit with stream: true through Session.run(on_output=...)."""

    @staticmethod
    def collect():
        got = []

        def on_output(stream, data):
            got.append((time.time(), stream, data))
        return got, on_output

    def test_a_miss_streams_its_lines_while_it_runs(self):
        # The last line is the command's own clock when it wrote it: the
        # first chunk must have reached the client before that (causality,
        # not a duration), and every chunk before the reply.
        command = "echo one; sleep 0.5; echo err >&2; echo two; sleep 0.5; date +%s.%N"
        got, on_output = self.collect()
        with self.client.session() as s:
            r = s.run(command, on_output=on_output)
            replied = time.time()
        self.assertEqual((r.hit, r.exit_code), (False, 0))
        out = [d for _, stream, d in got if stream == "stdout"]
        self.assertEqual("".join(out), r.stdout)
        self.assertEqual("".join(d for _, stream, d in got if stream == "stderr"), r.stderr)
        self.assertEqual(r.stderr, "err\n")
        self.assertGreaterEqual(len(out), 2, got)  # not one block at the end
        self.assertEqual(out[0], "one\n")
        last_written = float(r.stdout.splitlines()[-1])
        self.assertLess(got[0][0], last_written, got)
        self.assertTrue(all(t <= replied for t, _, _ in got))

    def test_a_hit_sends_its_whole_output_before_the_reply(self):
        command = "echo one; echo two; echo err >&2"
        got, on_output = self.collect()
        with self.client.session() as s:
            branch = s.spec(command)
            r = s.run(command, on_output=on_output)
        self.assertTrue(r.hit)
        self.assertEqual(r.branch, branch)
        self.assertEqual([(stream, d) for _, stream, d in got], [("stdout", "one\ntwo\n"), ("stderr", "err\n")])

    def test_the_environment_streams(self):
        got = []
        with SpeculaEnvironment(socket=self.socket, on_output=lambda s, d: got.append(d)) as env:
            out = env.execute("printf 'a\\n'; sleep 0.2; printf 'b\\n'")
        self.assertEqual(out["output"], "a\nb\n")
        self.assertEqual("".join(got), out["output"])


class MiniSweAgentE2E(DaemonTestCase):
    def test_execute_and_template_vars(self):
        with SpeculaEnvironment(socket=self.socket, env={"SPECULA_PY": "yes"}, timeout=30) as env:
            out = env.execute("echo $SPECULA_PY; echo err >&2; exit 3")
            self.assertEqual(out["output"], "yes\nerr\n")
            self.assertEqual(out["returncode"], 3)
            self.assertFalse(out["hit"])
            self.assertEqual(env.execute("pwd", cwd="/usr")["output"], "/usr\n")
            self.assertNotEqual(env.execute("pwd")["output"], "/usr\n")  # an explicit cwd is a subshell's
            env.speculate("echo predicted")
            self.assertTrue(env.execute("echo predicted")["hit"])
            with self.assertRaises(subprocess.TimeoutExpired):
                env.execute("sleep 20", timeout=1)
            tv = env.get_template_vars()
            self.assertEqual(tv["session"], env.session.id)
            self.assertIn("system", tv)
            sid = env.session.id
        with self.assertRaises(specula.NotFound):
            self.client.show_session(sid)

    def test_the_example_agent_loop_gets_hits(self):
        import agent_loop
        out = io.StringIO()
        with SpeculaEnvironment(socket=self.socket) as env:
            stats = agent_loop.run(env, agent_loop.ScriptedModel(agent_loop.SCRIPT, 0.05), oracle=True, out=out)
            final = env.execute("cat /srv/app/app.conf /srv/app/STATUS")
        self.assertEqual(final["output"], "port=8080\nok\n", out.getvalue())
        self.assertEqual(stats["steps"], len(agent_loop.SCRIPT), out.getvalue())
        self.assertGreaterEqual(stats["hits"], len(agent_loop.SCRIPT) - 2, out.getvalue())
        self.assertEqual(stats["rollbacks"], 1)
        self.assertFalse(os.path.exists("/srv/app/STATUS"))


# The real trajectories (../shared/trajectories next to the repository, as
# the C++ speculators_data_test finds them; CMake passes the path). Read at
# test time, never copied into the repository.
TRAJECTORIES = os.environ.get("SPECULA_SHARED_TRAJECTORIES") or os.path.join(
    HERE, "..", "..", "..", "shared", "trajectories")
# A mini-swe-agent run (DeepSeek) on a SWE-bench task: it greps and views
# files of /testbed, writes scripts with here-documents and runs them with
# `cd /testbed && python X.py` (seven times), then writes a patch and cats it.
CORPUS_TRAJECTORY = "swe-mini-deepseek/django__django-11999_deepseek_chat_test_1-100_a06ef392.jsonl"
# Steps not replayed here: they would reach the network (installers, git
# remotes), or print what differs between two runs of the same state (times
# in long listings, dates, process tables). The rest is safe in a session:
# a layer-target session writes only its own layers.
NOT_REPLAYABLE = re.compile(r"\b(pip3?|conda|apt(-get)?|curl|wget|npm|date|sleep|ps|top)\b|"
                            r"\bgit (clone|fetch|pull|push)\b|\bls -[a-zA-Z]*l|\bstat\b")


def corpus_commands(path: str) -> list[str]:
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    assert lines[0]["type"] == "trajectory", path
    return [s["command"] for s in lines[1:] if not NOT_REPLAYABLE.search(s["command"])]


def tree_of(root: str) -> dict[str, tuple]:
    """Every entry below root: type, mode, owner and content (or link target)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    what = hashlib.sha256(f.read()).hexdigest()
            else:
                what = ""
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                             what)
    return out


class CorpusReplayE2E(DaemonTestCase):
    """A real agent's trajectory through SpeculaEnvironment, speculation on vs off.

    The agent loop is the trajectory's: each recorded command goes to
    execute() in turn. With transparent speculation on, the loop "thinks"
    until the daemon's speculation round for the head is over (session.show's
    round_head), as an agent whose model takes longer than a round would; it
    never speculates itself. Every step's output and return code, and the
    files the session ends with, must equal the run with speculation off,
    and the speculator (the built-in one, from the session's own history)
    must have guessed some of the commands.
    """

    WORK = "/testbed"  # the trajectory's work dir, created inside the session only

    def replay(self, commands: list[str], speculation) -> dict:
        env = SpeculaEnvironment(socket=self.socket, speculation=speculation, timeout=120,
                                 env={"PYTHONHASHSEED": "0"})  # the scripts print sets: one order
        with env:
            head = env.execute(f"mkdir -p {self.WORK} && cd {self.WORK}")["checkpoint"]
            steps, hits = [], 0
            for command in commands:
                if speculation:
                    self.think(env, head)
                r = env.execute(command)
                steps.append((command, r["output"], r["returncode"]))
                hits += bool(r["hit"])
                head = r["checkpoint"]
            view = tempfile.mkdtemp(dir=self.dir)
            env.session.mount(head, view)
            try:
                files = tree_of(os.path.join(view, self.WORK.lstrip("/")))
            finally:
                self.client.umount(view)
                os.rmdir(view)
            launched_hits = [b for b in env.session.branches() if b.state == "promoted" and b.origin]
            return {"steps": steps, "files": files, "hits": hits, "info": env.session.info(),
                    "speculator_hits": launched_hits}

    def think(self, env: SpeculaEnvironment, head: str) -> None:
        # The bound only keeps a broken daemon from hanging the test.
        deadline = time.time() + 60
        while env.session.info().speculation.round_head != head:
            self.assertLess(time.time(), deadline, f"no speculation round finished for {head}")
            time.sleep(0.02)

    def test_a_corpus_trajectory_gets_hits_and_ends_as_without_speculation(self):
        path = os.path.join(TRAJECTORIES, CORPUS_TRAJECTORY)
        if not os.path.isfile(path):
            self.skipTest(f"the real trajectories are not at {TRAJECTORIES} (set SPECULA_SHARED_TRAJECTORIES)")
        self.assertFalse(os.path.exists(self.WORK), f"{self.WORK} exists on the host: the replay would read it")
        commands = corpus_commands(path)
        self.assertGreater(len(commands), 40)
        off = self.replay(commands, None)
        on = self.replay(commands, {"speculator": "builtin", "k": 3, "launch": "all"})
        for i, (want, got) in enumerate(zip(off["steps"], on["steps"])):
            self.assertEqual(want, got, f"step {i} differs with speculation on")
        self.assertEqual(len(on["steps"]), len(commands))
        self.assertEqual(off["files"], on["files"])
        self.assertIn("patch.txt", on["files"])  # the trajectory's last writes are there
        self.assertEqual(off["hits"], 0)
        self.assertIsNone(off["info"].speculation)
        # Hits, each a branch the speculator launched (the loop never speculated).
        self.assertGreater(on["hits"], 0)
        self.assertEqual(len(on["speculator_hits"]), on["hits"])
        self.assertTrue(all(b.origin.source == "speculator:builtin" for b in on["speculator_hits"]))
        self.assertEqual(on["info"].speculation.hits, on["hits"])
        print(f"\ncorpus replay: {len(commands)} steps, {on['hits']} hits, "
              f"{on['info'].speculation.launched} branches launched", file=sys.stderr)
        self.assertFalse(os.path.exists(self.WORK), "a layer-target session wrote the host")


if __name__ == "__main__":
    unittest.main()
