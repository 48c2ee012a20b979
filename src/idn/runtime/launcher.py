"""``idn serve``: one OS process per node, each an HTTP server on a loopback
port; RUN/nodes.json, RUN/token, RUN/serve.json (what every node reads);
one ``ready`` line once every node answers; SIGTERM or Ctrl-C stops them all.

The launcher binds each node's listening socket itself and hands the
descriptor to the node's process, so every port is known (and written to
the configuration) before any node starts. It also binds, for each node it
starts, a Unix socket in a directory of its own (``serve.json``'s
``hop_sockets``): the nodes started on one host forward to each other
through it (:mod:`.forwarding`), nodes elsewhere by TCP.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from ..model.network import IDN
from .models import read_catalog_files

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def allocation_from_policy(idn: IDN, name: str, slots: int = 30, seed: int = 0, params: dict | None = None) -> dict:
    """A simulator policy's allocation after ``slots`` slots of the
    scenario's own workload: the policy's code, run as the simulator runs it."""
    from ..policies.registry import make_policy
    from ..sim.inputs import count_matrix, default_trace, request_types_for
    from ..sim.loop import run_policy

    trace = default_trace(idn, slots, seed)
    rt = request_types_for(idn, trace)
    result = run_policy(rt, make_policy(name, **(params or {})), count_matrix(rt, trace), seed=seed)
    return idn.allocation_to_ids(result.final_allocation)


def first_allocation(idn: IDN, name: str, seed: int = 0, params: dict | None = None) -> dict:
    """A live policy's allocation for slot 0: the simulator's first proposal
    (INFIDA: the rounding of its uniform start), which every node's own
    slice reproduces."""
    from ..policies.registry import make_policy
    from ..sim.inputs import request_types_for

    return idn.allocation_to_ids(make_policy(name, **(params or {})).start(request_types_for(idn), seed).propose())


def check_models(idn: IDN, models_dir: str | Path) -> None:
    files = read_catalog_files(models_dir)
    for m in idn.models:
        name = m.id.split("/", 1)[1]
        if name not in files:
            raise ValueError(f"model {m.id!r}: {models_dir}/catalog.csv has no {name!r} (not built by 'idn models build'?)")
        if not Path(files[name]["file"]).exists():
            raise ValueError(f"model {m.id!r}: file {files[name]['file']} is missing")


def read_peers(path: str | Path) -> dict[str, str]:
    """{node id: url} from a JSON file: that mapping, or a nodes.json list."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, list):
        data = {d["id"]: d["url"] for d in data}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: expected {{node id: url}} or a nodes.json list")
    return data


def bind(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(512)
    s.set_inheritable(True)
    return s


def bind_unix(path: str | Path) -> socket.socket:
    """A listening Unix socket at path (a stale file left there by a dead node is replaced)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s.bind(str(path))
    s.listen(512)
    s.set_inheritable(True)
    return s


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1.0) as r:
            return r.status == 200
    except OSError:
        return False


class Cluster:
    """The node processes of one ``idn serve``."""

    def __init__(self, scenario_path, idn: IDN, models_dir, allocation: dict, run_dir, nodes=None, peers=None,
                 token=None, hop_timeout_s: float = 2.0, epoch: float | None = None, latency_scale: float = 1.0,
                 policy: dict | None = None, deterministic: bool = False, control_hop_timeout_s: float | None = None,
                 emulate: bool = True, max_batch: int = 32, max_batch_wait_us: float = 0.0):  # fmt: skip
        self.idn, self.run_dir = idn, Path(run_dir)
        ids = [n.id for n in idn.nodes]
        local = list(nodes or ids)
        for n in local:
            if n not in idn.node_index:
                raise ValueError(f"--nodes: unknown node {n!r}")
        if peers is not None:
            missing = [n for n in ids if n not in peers]
            if missing:
                raise ValueError(f"--peers: no address for node(s) {', '.join(missing)}")
        elif nodes:
            raise ValueError("--nodes needs --peers FILE (the addresses of every node)")
        if latency_scale < 0 or hop_timeout_s <= 0:
            raise ValueError("--latency-scale must be >= 0 and --hop-timeout > 0")
        if int(max_batch) < 1 or not 0 <= max_batch_wait_us <= 1e6:
            raise ValueError("--max-batch must be >= 1 and --max-batch-wait-us within [0, 1e6]")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        for old in (self.run_dir / "state").glob("*.npz"):  # a new run: the last run's node checkpoints are not ours
            old.unlink()
        self.token = token or secrets.token_urlsafe(24)
        tok = self.run_dir / "token"
        tok.write_text(self.token + "\n")
        tok.chmod(0o600)
        self.hop_sockets: dict[str, dict] = {}  # node -> {"url", "path"}: its Unix socket, for nodes of this host
        self.unix_sockets: dict[str, socket.socket] = {}
        self.hop_dir = None
        self.urls = urls = self._bind(local, peers)
        self._bind_unix(local)
        self.local = local
        cfg = {
            "scenario": str(Path(scenario_path).resolve()), "models": str(Path(models_dir).resolve()),
            "allocation": allocation, "epoch": float(epoch if epoch is not None else time.time()),
            "peers": urls, "hop_timeout_s": hop_timeout_s, "latency_scale": latency_scale,
            "run_dir": str(self.run_dir.resolve()), "policy": policy, "deterministic": bool(deterministic),
            "control_hop_timeout_s": control_hop_timeout_s, "emulate": bool(emulate), "max_batch": int(max_batch),
            "max_batch_wait_us": float(max_batch_wait_us), "hop_sockets": self.hop_sockets,
        }  # fmt: skip
        self.cfg = cfg
        (self.run_dir / "serve.json").write_text(json.dumps(cfg, indent=2))
        self.procs: dict[str, subprocess.Popen] = {}

    def _bind(self, local: list[str], peers: dict | None) -> dict[str, str]:
        """Every node's URL; binds the listening sockets of the nodes started here
        (the Ray backend, :mod:`.ray_backend`, starts its actors here instead)."""
        self.sockets = {}
        urls = dict(peers or {})
        for n in local:
            if peers:
                u = urlparse(peers[n])
                self.sockets[n] = bind(u.hostname, u.port)
            else:
                self.sockets[n] = bind("127.0.0.1", 0)
                urls[n] = f"http://127.0.0.1:{self.sockets[n].getsockname()[1]}"
        return urls

    def _bind_unix(self, local: list[str]) -> None:
        """A Unix socket per node started here, in a directory only this user can
        enter (a short path under the system's temp dir: a Unix socket's path is
        limited to about 100 bytes). The URL beside each path ties the path to
        that address: a node restarted at another address is reached by TCP."""
        self.hop_dir = Path(tempfile.mkdtemp(prefix="idn-hop-"))
        try:
            for n in local:
                path = self.hop_dir / f"{self.idn.node_index[n]}.sock"
                self.unix_sockets[n] = bind_unix(path)
                self.hop_sockets[n] = {"url": self.urls[n], "path": str(path)}
        except OSError as exc:  # e.g. a temp dir whose path is too long for a Unix socket: TCP serves
            print(f"no Unix sockets between the nodes ({exc}): they forward by TCP", file=sys.stderr, flush=True)
            self._remove_hop_dir()
            self.unix_sockets.clear()
            self.hop_sockets.clear()

    def write_nodes(self, extra: dict[str, dict]) -> None:
        """RUN/nodes.json: every node's id, tier and URL, plus ``extra[node id]``."""
        nodes = [{"id": n.id, "tier": n.tier, "url": self.urls[n.id], **extra.get(n.id, {})} for n in self.idn.nodes]
        (self.run_dir / "nodes.json").write_text(json.dumps(nodes, indent=2))

    def start(self) -> None:
        for n in self.local:
            fds = [self.sockets[n].fileno(), *([self.unix_sockets[n].fileno()] if n in self.unix_sockets else [])]
            log = open(self.run_dir / "logs" / f"{n}.log", "wb")
            self.procs[n] = subprocess.Popen(
                [sys.executable, "-m", "idn.runtime.node", str(self.run_dir), n, *map(str, fds)],
                pass_fds=fds, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            log.close()
            for sock in (self.sockets[n], self.unix_sockets.pop(n, None)):
                if sock is not None:
                    sock.close()  # the child holds its own copies
        self.write_nodes({n.id: {"pid": self.procs[n.id].pid if n.id in self.procs else None} for n in self.idn.nodes})

    def wait_ready(self, timeout: float = 300.0) -> None:  # a busy shared machine can take minutes
        deadline = time.time() + timeout
        pending = list(self.urls)
        while pending:
            for n, p in self.procs.items():
                if p.poll() is not None:
                    tail = (self.run_dir / "logs" / f"{n}.log").read_text(errors="replace").strip().splitlines()[-3:]
                    raise RuntimeError(f"node {n!r} exited with status {p.returncode}: {' | '.join(tail)}")
            pending = [n for n in pending if not _healthy(self.urls[n])]
            if pending and time.time() > deadline:
                raise RuntimeError(f"node(s) {', '.join(pending)} did not answer within {timeout:g} s")
            if pending:
                time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to every node (each finishes what is in flight), SIGKILL to any still up after timeout."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + timeout
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._remove_hop_dir()

    def _remove_hop_dir(self) -> None:
        """The Unix sockets' directory (each node also removes its own socket file as it stops)."""
        for s in self.unix_sockets.values():
            s.close()  # of nodes never started: still ours
        if self.hop_dir is not None:
            shutil.rmtree(self.hop_dir, ignore_errors=True)

    def run_until_signal(self, ready_timeout: float = 300.0) -> int:
        stop = {"sig": None}

        def handler(signum, frame):
            stop["sig"] = signum

        old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.wait_ready(ready_timeout)
            print(f"ready: {len(self.urls)} nodes, run dir {self.run_dir}, nodes {self.run_dir / 'nodes.json'}", flush=True)
            while stop["sig"] is None and self.watch():
                time.sleep(0.2)
        finally:
            t0 = time.perf_counter()
            self.stop()
            for s, h in old.items():
                signal.signal(s, h)
        print(f"stopped: {self.stopped(time.perf_counter() - t0)}", flush=True)
        return 0

    def watch(self) -> bool:
        """Called every 0.2 s while serving: False once no node is left."""
        return [p.poll() for p in self.procs.values()].count(None) > 0  # polls all: reaps the dead

    def stopped(self, seconds: float) -> str:
        codes = [p.returncode for p in self.procs.values()]
        return f"{len(codes)} node process(es) in {seconds:.1f} s, exit codes {codes}"
