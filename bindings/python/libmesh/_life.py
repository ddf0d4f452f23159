# SPDX-License-Identifier: Apache-2.0
"""Lifetime guard for a C handle shared between Python threads.

Every call into C on a handle runs between enter() and leave(); close()
marks the handle closed, lets the owner wake blocked calls, waits until no
call is inside C, and only then frees it.  So closing from another thread
never frees memory that a blocked mesh_accept()/mesh_conn_read() still uses.
"""

import threading

from . import errors


class Life:
    __slots__ = ("_cv", "_busy", "closed", "_what")

    def __init__(self, what):
        self._cv = threading.Condition(threading.Lock())
        self._busy = 0
        self.closed = False
        self._what = what

    def enter(self):
        with self._cv:
            if self.closed:
                raise errors.error_for(errors.ERR_CLOSED,
                                       "%s is closed" % self._what)
            self._busy += 1

    def leave(self):
        with self._cv:
            self._busy -= 1
            if self._busy == 0:
                self._cv.notify_all()

    def begin_close(self):
        """Mark closed.  Returns (first, busy): whether this call is the one
        that closes, and whether some call is still inside C."""
        with self._cv:
            first = not self.closed
            self.closed = True
            return first, self._busy > 0

    def wait_idle(self, timeout=None):
        with self._cv:
            return self._cv.wait_for(lambda: self._busy == 0, timeout)
