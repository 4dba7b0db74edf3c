"""Start the real server (uvicorn) on a free loopback port, for tests, the load test and the bench."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from realtime.config import PROJECT_ROOT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerProcess:
    """A started server: its base URL, its process id, and how long it took to answer /ready 200."""

    base: str
    pid: int
    ready_s: float  # from spawning the process to the first 200 of GET /ready


@contextmanager
def running_server(
    env: Mapping[str, str] | None = None, timeout: float = 120.0, log_path: Path | None = None
) -> Iterator[str]:
    """Run ``uvicorn app:app`` on 127.0.0.1 until the block ends; yields its base URL.

    Waits for ``GET /ready`` to answer 200. The server's output goes to ``log_path`` (or is
    discarded); on a failed start the error says where to look.
    """
    with server_process(env, timeout, log_path) as server:
        yield server.base


@contextmanager
def server_process(
    env: Mapping[str, str] | None = None, timeout: float = 120.0, log_path: Path | None = None
) -> Iterator[ServerProcess]:
    """Like :func:`running_server`, but yields a :class:`ServerProcess` (pid and start-up time too)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, "QUICKCHECK": "0", "PYTHONUNBUFFERED": "1", **(env or {})}
    command = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)]
    log_file = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    spawned = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=full_env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        _wait_ready(base, process, timeout, log_path)
        yield ServerProcess(base, process.pid, time.perf_counter() - spawned)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_path:
            log_file.close()  # type: ignore[union-attr]


def _wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float, log_path: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before it was ready; see {log_path}")
        try:
            if httpx.get(f"{base}/ready", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # fine-grained, so that the measured start-up time is not rounded up
    raise TimeoutError(f"the server at {base} was not ready within {timeout:.0f} s; see {log_path}")
