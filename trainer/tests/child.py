"""A child process speaking protocol v1 (requests on stdin, one JSON message per stdout line), for tests."""

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


class Proc:
    """A child speaking protocol v1: requests on stdin, one JSON line per message on stdout."""

    def __init__(self, args, env_paths=(), env=None):
        env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(ROOT / "trainer"), *env_paths])}
        self.p = subprocess.Popen([sys.executable, "-m", "grpo", *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.err.extend(self.p.stderr), daemon=True).start()  # never let it block
        self.n = 0

    def stderr(self) -> str:
        return "".join(self.err)

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(json.loads(line))  # every stdout line must be protocol JSON
        self.lines.put(None)

    def next(self, predicate, timeout=300):
        while True:
            msg = self.lines.get(timeout=timeout)
            if msg is None:
                raise AssertionError(f"process ended: {self.stderr()[-3000:]}")
            assert msg["v"] == 1
            self.seen.append(msg)
            if predicate(msg):
                return msg

    def send_raw(self, line: str):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def request(self, type_, timeout=300, **params):
        self.n += 1
        rid = f"r{self.n}"
        self.send_raw(json.dumps({"v": 1, "type": type_, "id": rid, **params}))
        return self.next(lambda m: m["type"] == "response" and m["id"] == rid, timeout)

    def ok(self, type_, **params):
        r = self.request(type_, **params)
        assert r["ok"], r
        return r["result"]

    def error(self, type_, **params):
        r = self.request(type_, **params)
        assert r["ok"] is False and isinstance(r["error"], str), r
        return r["error"]
