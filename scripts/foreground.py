"""Run a command as the terminal's foreground process group, so Ctrl-C reaches it alone.

``make run`` is make → uv → the server. Ctrl-C sends SIGINT to the terminal's whole
foreground process group: the server drains and exits 0, but make, hit by the same signal,
always reports "make: *** [run] Interrupt" and exits 130 whatever its recipe did. Moving the
command into a process group of its own and handing it the terminal keeps make and uv out of
the signal's way: they see the command end cleanly and exit with its status. The shell takes
the terminal back when make ends, as it does after any job.

Without a controlling terminal (CI, a pipe, a service manager) the command just runs.

Usage: python scripts/foreground.py COMMAND [ARG...]
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys


def take_terminal() -> None:
    """Become the leader of a new process group and the terminal's foreground group."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        return  # no controlling terminal: nothing to take
    try:
        os.setpgid(0, 0)
        # A background group that changes the foreground group gets SIGTTOU (stopped) unless
        # it ignores it; restored before exec so the command behaves as usual.
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(tty, os.getpgrp())
        finally:
            signal.signal(signal.SIGTTOU, previous)
    except OSError:
        pass  # not allowed here (another session's terminal): run as we are
    finally:
        with contextlib.suppress(OSError):
            os.close(tty)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: foreground.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    take_terminal()
    os.execvp(argv[0], argv)
    return 127  # not reached: execvp replaces this process or raises


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
