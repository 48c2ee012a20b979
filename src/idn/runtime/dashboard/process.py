"""The dashboard beside ``idn serve``: its socket bound here (so its URL is
known before it starts, as the nodes' are), its process started and stopped
with the nodes, its URL written into ``RUN/serve.json`` as ``"dashboard"``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from ..launcher import bind


class DashboardProcess:
    def __init__(self, run_dir: str | Path, host: str = "127.0.0.1", port: int = 0):
        self.run_dir = Path(run_dir)
        if not 0 <= port <= 65535:
            raise ValueError(f"--dashboard-port: must be from 0 (a free port) to 65535, got {port}")
        try:
            self.sock = bind(host, port)
        except OSError as exc:
            raise ValueError(f"--dashboard-port {port}: cannot listen on {host}:{port}: {exc.strerror}") from None
        self.url = f"http://{host}:{self.sock.getsockname()[1]}/"
        self.proc: subprocess.Popen | None = None

    def start(self) -> DashboardProcess:
        """Start the server (reading RUN/nodes.json: call after the nodes started) and note its URL in RUN/serve.json."""
        cfg_path = self.run_dir / "serve.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["dashboard"] = self.url
        tmp = cfg_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(cfg, indent=2))
        os.replace(tmp, cfg_path)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        with open(self.run_dir / "logs" / "dashboard.log", "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "idn.runtime.dashboard.server", str(self.run_dir), "--fd", str(self.sock.fileno()),
                 "--watch-parent"],
                pass_fds=[self.sock.fileno()], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.sock.close()  # the child holds its own copy
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
