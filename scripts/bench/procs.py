"""Child processes of the orchestrator and the JSON-line conversation with them.

Every child is started here and stopped here: ``Child.stop`` asks politely (a command), then
terminates, then kills, each with a deadline, so a run never leaves a process behind. Only
processes this module started are ever signalled, by their own pid.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class ChildError(RuntimeError):
    """A child did not answer as expected; the message names it and points at its log."""


class Child:
    """One benchmark process with stdin/stdout pipes and stderr in a log file."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(
        cls,
        name: str,
        module: str,
        args: list[str],
        log_dir: Path,
        *,
        import_first: Path | None = None,
    ) -> Child:
        """Start ``python -m module args``; ``import_first`` goes before everything else on
        the child's import path (e.g. another checkout's ``backend`` directory)."""
        log_path = log_dir / f"{name}.log"
        env = dict(os.environ)
        paths = [str(import_first) if import_first else None, str(ROOT), env.get("PYTHONPATH")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
                env=env,
                limit=1 << 24,
            )
        return cls(name, process, log_path)

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())

    async def expect(self, event: str, within: float) -> dict[str, Any]:
        """The next event line, which must be ``event``, within ``within`` seconds."""
        assert self.process.stdout is not None
        deadline = asyncio.get_running_loop().time() + within
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), max(remaining, 0))
            except TimeoutError:
                raise ChildError(
                    f"{self.name} did not send {event!r} within {within:g} s; see {self.log_path}"
                ) from None
            if not line:
                raise ChildError(
                    f"{self.name} exited (status {self.process.returncode}) before sending "
                    f"{event!r}; see {self.log_path}:\n{self.log_tail()}"
                )
            try:
                message = json.loads(line)
            except ValueError:
                continue  # a stray print from a library; the protocol lines are JSON
            if not isinstance(message, dict) or "event" not in message:
                continue
            if message["event"] != event:
                raise ChildError(f"{self.name} sent {message['event']!r}, expected {event!r}")
            return message

    async def ask(self, command: dict[str, Any], event: str, within: float) -> dict[str, Any]:
        self.send(command)
        return await self.expect(event, within)

    async def stop(self, command: dict[str, Any], within: float = 15.0) -> None:
        """Ask the child to exit with ``command``; terminate, then kill, if it does not."""
        if self.process.returncode is None:
            try:
                self.send(command)
                assert self.process.stdin is not None
                self.process.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass
        for escalate in (None, self.process.terminate, self.process.kill):
            if escalate is not None and self.process.returncode is None:
                escalate()
            try:
                await asyncio.wait_for(self.process.wait(), within)
                return
            except TimeoutError:
                continue
        raise ChildError(f"{self.name} (pid {self.pid}) survived kill")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
