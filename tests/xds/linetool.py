# SPDX-License-Identifier: Apache-2.0
"""A test tool that answers one JSON line per command (tests/xds_canary_tool,
tests/xds_routes_tool): started with its arguments, driven over stdin, its
answers read on a thread so that a silent tool ends in a timeout, not a
hang."""
import json
import queue
import subprocess
import threading


class Tool:
    def __init__(self, argv, timeout=90):
        self.timeout = timeout
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            try:
                self.q.put(json.loads(line))
            except ValueError:
                self.q.put({'error': line})
        self.q.put(None)

    def next(self, timeout=None):
        r = self.q.get(timeout=timeout or self.timeout)
        if r is None:
            raise RuntimeError('the tool exited')
        return r

    def cmd(self, text, timeout=None):
        self.p.stdin.write(text + '\n')
        self.p.stdin.flush()
        return self.next(timeout)

    def stop(self):
        try:
            self.p.stdin.write('quit\n')
            self.p.stdin.close()
            self.p.wait(timeout=30)
        except Exception:
            self.p.kill()
            self.p.wait()
