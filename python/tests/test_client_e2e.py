"""The Python client against a real speculad (root; ctest label e2e).

$SPECULAD is the daemon binary (CMake passes it); each test class starts one
daemon on a private socket and state dir and stops it at the end.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
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


if __name__ == "__main__":
    unittest.main()
