"""A command run on a pseudo terminal, for the tests of what a user does in a shell.

Ctrl-C means something only on a terminal: the kernel's line discipline turns the typed byte
0x03 into SIGINT for the terminal's foreground process group. ``pty.fork`` makes the child a
session leader with the pty as its controlling terminal, as a shell's job would have; a
thread drains the output so the child never blocks on a full pty buffer.
"""

from __future__ import annotations

import contextlib
import os
import pty
import threading
import time
from pathlib import Path


class Terminal:
    """``argv`` running on its own pty; ``output`` grows as it prints."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: exec the command on the pty
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        self.pid, self._fd = pid, fd
        self._output = bytearray()
        self._lock = threading.Lock()
        self.status: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:  # EIO: every process on the terminal has closed it
                return
            if not chunk:
                return
            with self._lock:
                self._output += chunk

    @property
    def output(self) -> str:
        with self._lock:
            return self._output.decode(errors="replace")

    def wait_for(self, text: str, within: float) -> bool:
        """Whether ``text`` shows up in the output within ``within`` seconds."""
        deadline = time.monotonic() + within
        while text not in self.output:
            if time.monotonic() > deadline or self.status is not None:
                return text in self.output
            time.sleep(0.05)
        return True

    def type(self, text: str) -> None:
        os.write(self._fd, text.encode())

    def ctrl_c(self) -> None:
        self.type("\x03")

    def wait(self, within: float) -> int:
        """The exit status (as ``os.waitpid`` gives it) within ``within`` s, or kill it."""
        deadline = time.monotonic() + within
        while self.status is None and time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                break
            time.sleep(0.05)
        if self.status is None:
            self.kill()
            raise TimeoutError(f"still running after {within} s:\n{self.output[-3000:]}")
        self._reader.join(timeout=5)
        return self.status

    def kill(self) -> None:
        """SIGKILL to its whole session's group, if it was not reaped yet."""
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, 9)
            _, self.status = os.waitpid(self.pid, 0)

    def close(self) -> None:
        self.kill()
        with contextlib.suppress(OSError):
            os.close(self._fd)
