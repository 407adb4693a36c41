"""The Python client's transport and decoding against a fake daemon (no root)."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import specula  # noqa: E402
from specula import wire  # noqa: E402


class FakeDaemon:
    """Answers each request line with what `answer(request)` returns: a list of raw lines,
    or a generator of them (each line is sent as it is yielded, so a generator
    can wait between lines for what the client does)."""

    def __init__(self, answer):
        self.dir = tempfile.mkdtemp(prefix="specula-py-")
        self.path = os.path.join(self.dir, "sock")
        self.answer = answer
        self.requests = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                try:
                    self._converse(conn)
                except OSError:
                    pass  # the client closed mid-answer (it may, on an error): wait for the next

    def _converse(self, conn):
        buf = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                req = json.loads(line)
                self.requests.append(req)
                for out in self.answer(req):
                    conn.sendall(out.encode() + b"\n")

    def close(self):
        self.server.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def result(req, value):
    return json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": value})


def notification(method, params):
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params})


def chunk(stream, data, session="s1", branch="b2"):
    return notification("action.output", {"session": session, "branch": branch, "stream": stream, "data": data})


class ClientUnitTest(unittest.TestCase):
    def test_no_daemon_is_unavailable_with_the_hint(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "none.sock")
            with self.assertRaises(specula.Unavailable) as cm:
                specula.Client(path).ping()
            self.assertEqual(cm.exception.kind, "unavailable")
            self.assertIn(f"speculad --socket {path}", cm.exception.hint)

    def test_replies_notifications_and_out_of_band_lines(self):
        commit = {"hit": True, "branch": 12, "exit_code": 0, "signal": 0, "stdout": "ok\n", "stderr": "",
                  "truncated": False, "duration_ms": 30, "saved_ms": 25.5, "head": "c3",
                  "lossy_effects": [{"tag": "t", "kind": "write", "path": "/p", "rule": "/p", "compensated": True,
                                     "detail": "1 -> 2"}],
                  "flags": ["nondeterministic"], "a_future_field": 1}

        def answer(req):
            if req["method"] == "action.commit":
                return ["", json.dumps({"jsonrpc": "2.0", "method": "action.output", "params": {}}),
                        json.dumps({"jsonrpc": "2.0", "id": 999, "result": {}}), result(req, commit)]
            return [result(req, {"pong": True})]

        fake = FakeDaemon(answer)
        try:
            with specula.Client(fake.path) as c:
                self.assertTrue(c.ping())
                r = c.commit("s1", "make", timeout_ms=500)
            self.assertIsInstance(r, specula.CommitResult)
            self.assertTrue(r.hit)
            self.assertEqual(r.branch, "12")  # ids sent as numbers read as text
            self.assertEqual(r.stdout, "ok\n")
            self.assertEqual(r.saved_ms, 25.5)
            self.assertEqual(r.lossy_effects[0].detail, "1 -> 2")
            self.assertTrue(r.lossy_effects[0].compensated)
            self.assertEqual(r.flags, ["nondeterministic"])
            self.assertTrue(r.ok)
            sent = fake.requests[-1]
            self.assertEqual(sent["jsonrpc"], "2.0")
            self.assertEqual(sent["params"], {"session": "s1", "command": "make", "timeout_ms": 500})
        finally:
            fake.close()

    def test_create_session_sends_speculation_and_decodes_origins(self):
        def answer(req):
            if req["method"] == "session.create":
                return [result(req, {"session": "s1", "head": "c0"})]
            if req["method"] == "session.show":
                return [result(req, {"session": "s1", "speculation": {
                    "config": {"speculator": "builtin", "k": 2, "min_p": 0, "launch": "rule"},
                    "proposals": 3, "launched": 2, "hits": 1, "cost_ms": 2, "saving_ms": 40.5, "last_error": ""}})]
            return [result(req, [{"branch": "b1", "state": "running", "command": "bash run.sh",
                                  "origin": {"source": "speculator:builtin", "confidence": 0.4, "rule": "run"}},
                                 {"branch": "b2", "state": "done", "command": "ls"}])]

        fake = FakeDaemon(answer)
        try:
            with specula.Client(fake.path) as c:
                c.create_session("/", speculation="builtin")
                self.assertEqual(fake.requests[-1]["params"]["speculation"], {"speculator": "builtin"})
                c.create_session("/", speculation={"speculator": "builtin", "k": 2})
                self.assertEqual(fake.requests[-1]["params"]["speculation"], {"speculator": "builtin", "k": 2})
                c.create_session("/", speculation=specula.SpeculationConfig(k=5))
                self.assertEqual(fake.requests[-1]["params"]["speculation"],
                                 {"speculator": "builtin", "k": 5, "min_p": 0.0, "launch": "rule"})
                c.create_session("/")
                self.assertNotIn("speculation", fake.requests[-1]["params"])
                info = c.show_session("s1")
                self.assertEqual(info.speculation.config.k, 2)
                self.assertEqual(info.speculation.hits, 1)
                self.assertEqual(info.speculation.saving_ms, 40.5)
                branches = c.branches("s1")
                self.assertEqual(branches[0].origin.source, "speculator:builtin")
                self.assertEqual(branches[0].origin.confidence, 0.4)
                self.assertIsNone(branches[1].origin)
        finally:
            fake.close()

    def test_errors_carry_kind_errno_and_hint(self):
        def answer(req):
            if req["method"] == "session.show":
                return [json.dumps({"jsonrpc": "2.0", "id": req["id"], "error": {
                    "code": -32002, "message": 'no session "s9"',
                    "data": {"kind": "not_found", "errno": 2, "hint": "specula session ls"}}})]
            if req["method"] == "daemon.methods":
                return [json.dumps({"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32007, "message": "full"}})]
            return [json.dumps({"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32601, "message": "nope"}})]

        fake = FakeDaemon(answer)
        try:
            c = specula.Client(fake.path)
            with self.assertRaises(specula.NotFound) as cm:
                c.show_session("s9")
            e = cm.exception
            self.assertEqual((e.kind, e.code, e.errno, e.hint), ("not_found", -32002, 2, "specula session ls"))
            self.assertIn("hint: specula session ls", str(e))
            self.assertIsInstance(e, specula.SpeculaError)
            with self.assertRaises(specula.ResourceExhausted):  # from the code alone
                c.methods()
            with self.assertRaises(specula.ProtocolError):
                c.call("bogus.method")
            with self.assertRaises(specula.InvalidArgument):
                c.diff()
            c.close()
        finally:
            fake.close()

    def test_a_daemon_that_never_answers_times_out(self):
        fake = FakeDaemon(lambda req: [])
        try:
            c = specula.Client(fake.path, timeout=0.3)
            with self.assertRaises(specula.DeadlineExceeded):
                c.ping()
            self.assertIsNone(c._sock)  # a late reply must not be read as the next call's
        finally:
            fake.close()

    def test_decoding_is_tolerant_of_absent_fields_and_strict_of_shapes(self):
        b = wire.decode(specula.BranchSummary, {"branch": "b1", "state": "done", "result": None})
        self.assertIsNone(b.result)
        d = wire.decode(specula.BranchDetail, {"branch": "b1", "result": {"exit_code": 2, "stdout": "x"},
                                               "journal": [{"kind": "open", "path": "/etc"}], "reason": "r"})
        self.assertEqual(d.result.exit_code, 2)
        self.assertEqual(d.result.stdout, "x")
        self.assertIsNone(d.result.stderr)
        self.assertEqual(d.journal[0].path, "/etc")
        cp = wire.decode_list(specula.Checkpoint, [{"checkpoint": "c1", "parent": None}, {"checkpoint": "c2",
                                                                                         "parent": "c1"}])
        self.assertIsNone(cp[0].parent)
        self.assertEqual(cp[1].parent, "c1")
        with self.assertRaises(TypeError):
            wire.decode(specula.CommitResult, [1, 2])


class StreamingUnitTest(unittest.TestCase):
    """action.commit with stream: true (docs/api.md "Streaming output")."""

    REPLY = {"hit": False, "branch": "b2", "exit_code": 0, "signal": 0, "stdout": "one\ntwo\n", "stderr": "err\n",
             "truncated": False, "duration_ms": 12, "saved_ms": 0, "head": "c4"}

    def test_chunks_are_dispatched_as_they_come_and_concatenate_to_the_reply(self):
        first_seen = threading.Event()
        waited = []

        def answer(req):
            if req["method"] != "action.commit":
                yield result(req, {"pong": True})
                return
            yield notification("session.changed", {"session": "s1"})  # another id-less method
            yield chunk("stdout", "one\n")
            # The reply is held back until the client has handed the first
            # chunk on: a client that buffered chunks until the reply never would.
            waited.append(first_seen.wait(30))
            yield chunk("stderr", "err\n")
            yield ""
            yield chunk("stdout", "two\n")
            yield notification("daemon.log", {"level": "info"})
            yield result(req, self.REPLY)

        got = []

        def on_output(stream, data):
            got.append((stream, data))
            first_seen.set()

        fake = FakeDaemon(answer)
        try:
            with specula.Client(fake.path) as c:
                r = c.attach("s1").run("make", timeout_ms=900, on_output=on_output)
                self.assertTrue(c.ping())  # the connection is still in step
            self.assertEqual(waited, [True])
            self.assertEqual(got, [("stdout", "one\n"), ("stderr", "err\n"), ("stdout", "two\n")])
            self.assertEqual("".join(d for s, d in got if s == "stdout"), r.stdout)
            self.assertEqual("".join(d for s, d in got if s == "stderr"), r.stderr)
            self.assertEqual((r.branch, r.head, r.hit), ("b2", "c4", False))
            commits = [q for q in fake.requests if q["method"] == "action.commit"]
            self.assertEqual(commits[0]["params"], {"session": "s1", "command": "make", "timeout_ms": 900,
                                                    "stream": True})
        finally:
            fake.close()

    def test_without_a_handler_nothing_streams(self):
        def answer(req):
            if req["method"] == "action.commit":
                return [chunk("stdout", "stray\n"), result(req, self.REPLY)]  # skipped, as before
            return [result(req, {"session": "s1"})]

        fake = FakeDaemon(answer)
        try:
            with specula.Client(fake.path) as c:
                r = c.commit("s1", "make")
            self.assertEqual(r.stdout, "one\ntwo\n")
            self.assertNotIn("stream", fake.requests[-1]["params"])
        finally:
            fake.close()

    def test_a_malformed_chunk_is_a_protocol_error_and_ends_the_connection(self):
        malformed = [
            notification("action.output", {"session": "s1", "branch": "b2", "stream": "stdout"}),  # no data
            notification("action.output", {"session": "s1", "branch": "b2", "stream": "stdin", "data": "x"}),
            notification("action.output", {"session": "s1", "branch": "b2", "stream": "stdout", "data": 7}),
            notification("action.output", ["s1", "b2", "stdout", "x"]),
            json.dumps({"jsonrpc": "2.0", "method": "action.output"}),  # no params
            chunk("stdout", "x", session="s9"),  # another session's
            '{"jsonrpc": "2.0", "method": "action.output", "params": {',  # not JSON
            "[1, 2]",  # not an object
        ]
        pending = list(malformed)

        def answer(req):
            if req["method"] == "action.commit":
                return [chunk("stdout", "ok\n"), pending.pop(0), result(req, self.REPLY)]
            return [result(req, {"pong": True})]

        fake = FakeDaemon(answer)
        try:
            c = specula.Client(fake.path)
            for line in malformed:
                got = []
                with self.assertRaises(specula.ProtocolError, msg=line) as cm:
                    c.commit("s1", "make", on_output=lambda s, d: got.append(d))
                self.assertEqual(cm.exception.kind, "protocol")
                self.assertEqual(cm.exception.method, "action.commit")
                self.assertEqual(got, ["ok\n"], line)  # what came before was dispatched
                self.assertIsNone(c._sock, line)  # the rest of the call must not be read as the next's
                self.assertTrue(c.ping(), line)  # a new connection works
            c.close()
        finally:
            fake.close()

    def test_chunks_of_another_branch_than_the_reply_are_a_protocol_error(self):
        def answer(req):
            if req["method"] == "action.commit":
                return [chunk("stdout", "one\n", branch="b9"), result(req, self.REPLY)]
            return [result(req, {"pong": True})]

        fake = FakeDaemon(answer)
        try:
            with specula.Client(fake.path) as c:
                with self.assertRaises(specula.ProtocolError) as cm:
                    c.commit("s1", "make", on_output=lambda s, d: None)
                self.assertIn("b9", str(cm.exception))
                self.assertTrue(c.ping())  # the reply was read: the connection is in step
        finally:
            fake.close()

    def test_a_handler_that_raises_ends_the_call_and_the_connection(self):
        def answer(req):
            if req["method"] == "action.commit":
                return [chunk("stdout", "one\n"), chunk("stdout", "two\n"), result(req, self.REPLY)]
            return [result(req, {"pong": True})]

        def on_output(stream, data):
            raise KeyError(data)

        fake = FakeDaemon(answer)
        try:
            c = specula.Client(fake.path)
            with self.assertRaises(KeyError):
                c.commit("s1", "make", on_output=on_output)
            self.assertIsNone(c._sock)
            self.assertTrue(c.ping())
            c.close()
        finally:
            fake.close()

    def test_the_environment_streams_through_its_callback(self):
        from specula.minisweagent import SpeculaEnvironment

        def answer(req):
            if req["method"] == "session.create":
                return [result(req, {"session": "s1", "head": "c0"})]
            if req["method"] == "action.commit":
                return [chunk("stdout", "one\ntwo\n"), chunk("stderr", "err\n"), result(req, self.REPLY)]
            return [result(req, {})]

        fake = FakeDaemon(answer)
        try:
            got, per_call = [], []
            env = SpeculaEnvironment(socket=fake.path, on_output=lambda s, d: got.append((s, d)))
            out = env.execute("make")
            self.assertEqual(out["output"], "one\ntwo\nerr\n")
            self.assertEqual(got, [("stdout", "one\ntwo\n"), ("stderr", "err\n")])
            env.execute("make", on_output=lambda s, d: per_call.append(d))  # a call's own wins
            self.assertEqual(per_call, ["one\ntwo\n", "err\n"])
            self.assertEqual(len(got), 2)
            self.assertNotIn("on_output", env.get_template_vars())
            env.close()
        finally:
            fake.close()


if __name__ == "__main__":
    unittest.main()
