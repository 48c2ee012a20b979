"""``idn serve --backend ray``: the IDN's nodes as actors on a Ray cluster
(docs/live.md, "On a cluster"; the actor itself is :mod:`.ray_node`, where
each node goes :mod:`.ray_placement`).

:class:`RayCluster` is the launcher's :class:`~.launcher.Cluster` with Ray
in place of local processes: the same run directory, token, ``serve.json``
and ready / stop lines, and ``nodes.json`` with two more fields per node,
``ray_node`` (the Ray node id) and ``host`` (its address; the URL is on it).

While it serves, the driver (this process) watches one outstanding call per
actor, which fails when the actor dies. Then it logs the lost IDN nodes,
grouped by the Ray node they were on, and brings each back where its
placement allows: Ray restarts a pinned node's actor on a Ray node with its
resource (once one is up); a default-placed node's actor, bound to its lost
Ray node, is created again on a live one (:func:`.ray_placement.choose_host`).
A node that comes back binds a new address; the driver starts it with the
keeper's newest checkpoint and allocations, tells every other node its new
URL, and rewrites ``nodes.json`` and ``serve.json``. Meanwhile the others
skip it, as they skip any node that does not answer.

The driver also mirrors each new checkpoint from the keeper into
``RUN/state/NODE.npz``, so the run directory holds what a local run's does.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path

from .launcher import LOOPBACK, Cluster, _healthy
from .models import read_catalog_files
from .ray_node import CheckpointKeeper, NodeActor
from .ray_placement import SLIVER, check_resources, choose_host, default_placement, hosts_from_ray

NAMESPACE = "idn"
WATCH_SECONDS = 0.5
MAX_ATTEMPTS = 5  # new actors for one lost node before idn serve gives up on it


def connect(address: str | None) -> bool:
    """Join the Ray cluster at ``address`` (None: start a small one here, on
    loopback); True if this call started Ray (and so must shut it down)."""
    host, _, port = (address or "").rpartition(":")
    host = host.strip("[]")
    if address and port.isdigit() and "://" not in address:  # Ray would retry a wrong address for minutes
        try:
            socket.create_connection((host, int(port)), timeout=5.0).close()
        except OSError as exc:
            raise ValueError(f"--address {address}: no Ray cluster answers there ({exc})") from None
    loopback = address is None or host in LOOPBACK
    if loopback:
        # Ray turns a loopback address into the machine's outward one before connecting
        # (and starts a local instance there): a cluster on 127.0.0.1 must be reached there
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
        from ray._private import ray_constants
    except ImportError:
        raise ValueError("--backend ray needs the ray package: pip install 'ray>=2.9'") from None
    if loopback:
        ray_constants.ENABLE_RAY_CLUSTER = False  # the same, when ray was imported before the line above
    if ray.is_initialized():  # a caller's own session: its runtime_env must ship idn (see _runtime_env)
        return False
    common = {"namespace": NAMESPACE, "logging_level": "warning", "log_to_driver": False, "runtime_env": _runtime_env()}
    if address:
        ray.init(address=address, **common)
    else:  # "local": a new instance even if this machine runs another; the nodes ask for no CPU
        ray.init(address="local", num_cpus=1, include_dashboard=False, object_store_memory=100 * 2**20, **common)
    return True


def model_files(idn, models_dir) -> dict[str, bytes]:
    """{path relative to the models directory: bytes}: catalog.csv and the
    .onnx file of every model the scenario uses (what a node reads)."""
    root = Path(models_dir).resolve()
    files = {"catalog.csv": (root / "catalog.csv").read_bytes()}
    catalog = read_catalog_files(root)
    for m in idn.models:
        path = Path(catalog[m.id.split("/", 1)[1]]["file"]).resolve()
        if not path.is_relative_to(root):
            raise ValueError(f"model {m.id!r}: its file {path} is outside {root}; --backend ray ships the models directory only")
        files[str(path.relative_to(root))] = path.read_bytes()
    return files


class RayCluster(Cluster):
    """The nodes of one ``idn serve --backend ray`` (module docstring)."""

    def __init__(self, scenario_path, idn, models_dir, allocation: dict, run_dir, address: str | None = None,
                 placement: dict[str, str] | None = None, start_timeout: float = 300.0, **kw):  # fmt: skip
        if kw.get("nodes") or kw.get("peers"):
            raise ValueError("--backend ray places every node itself: --nodes and --peers are the local backend's")
        self.started_ray = connect(address)
        import ray

        self.ray, self.actors, self.sentinels, self.where = ray, {}, {}, {}
        self.lost: dict[str, float] = {}  # idn node -> when it was lost
        self.gone: set[str] = set()  # Ray nodes said lost
        self.probes, self.rejoining = {}, {}  # idn node -> pending address() / start() call
        self.keeper, self.seq, self.next_watch, self.failures = None, 0, 0.0, 0
        self.attempts: dict[str, int] = {}  # idn node -> actors created for it again
        self.start_timeout, self.done = start_timeout, False
        try:
            self.pinned = dict(placement or {})
            hosts = hosts_from_ray(ray.nodes())
            check_resources(self.pinned, hosts)
            self.placed = default_placement(idn, hosts, self.pinned)
            self.run_id = secrets.token_hex(4)
            self.bundle = ray.put({"idn": idn, "files": model_files(idn, models_dir)})
            self.driver_node = ray.get_runtime_context().get_node_id()
            self.keeper_name = f"idn-{self.run_id}-keeper"
            keeper = ray.remote(CheckpointKeeper).options(name=self.keeper_name, num_cpus=0, scheduling_strategy=_on(self.driver_node))
            self.keeper = keeper.remote([self.bundle])  # [ref]: the node actors fetch it from the keeper
            super().__init__(scenario_path, idn, models_dir, allocation, run_dir, **kw)
        except RuntimeError as exc:  # an actor that did not start: one line, as a bad input gets
            self.stop()
            raise ValueError(str(exc)) from None
        except BaseException:
            self.stop()
            raise

    # ---- starting ---------------------------------------------------------------------
    def _new_actor(self, n: str):
        opts = {"name": f"idn-{self.run_id}-{n}", "num_cpus": 0, "max_restarts": -1, "max_task_retries": 0}
        if n in self.pinned:
            opts["resources"] = {self.pinned[n]: SLIVER}
        else:
            opts["scheduling_strategy"] = _on(self.placed[n])
        self.actors[n] = self.ray.remote(NodeActor).options(**opts).remote(n, self.keeper_name)
        return self.actors[n]

    def _bind(self, local, peers) -> dict[str, str]:
        refs = {n: self._new_actor(n).address.remote() for n in local}
        self.where = self._gather(refs, "start its actor")
        return {n: self.where[n]["url"] for n in local}

    def _bind_unix(self, local) -> None:
        """None: Ray places nodes on any host, and an actor binds its own address; they forward by TCP."""

    def _gather(self, refs: dict, what: str) -> dict:
        deadline = time.time() + self.start_timeout
        out, pending = {}, dict(refs)
        while pending:
            ready, _ = self.ray.wait(list(pending.values()), num_returns=len(pending), timeout=max(0.0, deadline - time.time()))
            if not ready:
                names = ", ".join(pending)
                raise RuntimeError(f"node(s) {names} did not {what} on the Ray cluster within {self.start_timeout:g} s")
            for n in [n for n, r in pending.items() if r in ready]:
                try:
                    out[n] = self.ray.get(pending.pop(n))
                except self.ray.exceptions.RayError as exc:
                    raise RuntimeError(f"node {n!r} did not {what} {self._placement_of(n)}: {_cause(exc)}") from None
        return out

    def _placement_of(self, n: str) -> str:
        return f"where resource {self.pinned[n]!r} is" if n in self.pinned else f"on Ray node {self.placed[n][:8]}"

    def start(self) -> None:
        self.starting = {n: a.start.remote(self.cfg, self.token) for n, a in self.actors.items()}
        self._write_nodes()
        names = {n: f"idn-{self.run_id}-{n}" for n in self.actors}
        info = {"namespace": NAMESPACE, "driver_node": self.driver_node, "actors": names, "keeper": self.keeper_name}
        (self.run_dir / "ray.json").write_text(json.dumps(info, indent=2))

    def _write_nodes(self) -> None:
        self.write_nodes({n: {"ray_node": w["ray_node"], "host": w["host"], "pid": w["pid"],
                              "resource": self.pinned.get(n)} for n, w in self.where.items()})  # fmt: skip

    def wait_ready(self, timeout: float = 300.0) -> None:
        self.start_timeout = timeout
        self._gather(self.starting, "start serving")
        deadline = time.time() + timeout
        for n, url in self.urls.items():  # the actors serve; can this machine reach them?
            while not _healthy(url):
                if time.time() > deadline:
                    raise RuntimeError(f"node {n!r} serves on its Ray node but {url} does not answer from here")
                time.sleep(0.1)
        by_host: dict[str, list[str]] = {}
        for n in [x.id for x in self.idn.nodes]:
            by_host.setdefault(self.where[n]["ray_node"], []).append(n)
        for ray_node, names in by_host.items():
            print(f"Ray node {ray_node[:8]} ({self.where[names[0]]['host']}): {', '.join(names)}", flush=True)
        self.sentinels = {n: a.serving.remote() for n, a in self.actors.items()}

    # ---- serving: losses and returns ------------------------------------------------
    def watch(self) -> bool:
        if time.time() < self.next_watch:
            return True
        self.next_watch = time.time() + WATCH_SECONDS
        try:
            self._check_sentinels()
            self._settle()
            self._bring_back()
            self._mirror()
            self.failures = 0
        except Exception as exc:  # noqa: BLE001 (the Ray cluster itself does not answer: give it a little while)
            self.failures += 1
            print(f"the Ray cluster does not answer ({self.failures}): {_cause(exc)}", flush=True)
            return self.failures < 20
        return True

    def _check_sentinels(self) -> None:
        """Actors whose outstanding call failed: their IDN nodes are lost."""
        refs = {r: n for n, r in self.sentinels.items()}
        ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=0) if refs else ([], [])
        lost = [n.id for n in self.idn.nodes if n.id in {refs[r] for r in ready}]  # in the scenario's order
        groups: dict[str, list[str]] = {}
        for n in lost:
            groups.setdefault(self.where[n]["ray_node"], []).append(n)
        for ray_node, names in groups.items():
            print(f"IDN node(s) {', '.join(names)} on Ray node {ray_node[:8]} ({self.where[names[0]]['host']}) stop answering; "
                  "requests skip them", flush=True)  # fmt: skip
        self._lose(lost)

    def _lose(self, lost: list[str]) -> None:
        lost = [n for n in lost if n not in self.lost]
        for n in lost:
            self.sentinels.pop(n, None)
            self.lost[n] = time.time()
        for m, a in self.actors.items():  # the others skip them at once, with no timeout to wait out
            if m not in self.lost:
                for n in lost:
                    a.set_peer.remote(n, None)
        for n in lost:
            if n in self.pinned:
                print(f"{n}: Ray restarts it on a Ray node with resource {self.pinned[n]!r} (when there is one)", flush=True)

    def _settle(self) -> None:
        """Ray nodes that Ray now says are gone: say so with every IDN node
        they held (lost, if their actors' calls have not failed yet), and
        place the default-placed ones again, all at once in the scenario's
        order (a pinned one Ray restarts; a dead actor on a live Ray node, too)."""
        alive = {h.node_id for h in hosts_from_ray(self.ray.nodes())}
        gone: dict[str, list[str]] = {}
        for n in [x.id for x in self.idn.nodes]:
            if self.where[n]["ray_node"] not in alive and self.where[n]["ray_node"] not in self.gone:
                gone.setdefault(self.where[n]["ray_node"], []).append(n)
        for ray_node, names in gone.items():
            self.gone.add(ray_node)
            print(f"lost Ray node {ray_node[:8]} ({self.where[names[0]]['host']}) with IDN node(s) {', '.join(names)}",
                  flush=True)  # fmt: skip
            self._lose(names)
            for n in names:
                if n not in self.pinned:  # bound there: Ray cannot restart it
                    self._replace(n, "its Ray node is gone")

    def _bring_back(self) -> None:
        ray = self.ray
        for n in [n for n in self.lost if n not in self.rejoining]:
            probe = self.probes.get(n)
            if probe is None:
                self.probes[n] = self.actors[n].address.remote()
                continue
            ready, _ = ray.wait([probe], timeout=0)
            if not ready:
                continue
            del self.probes[n]
            try:
                addr = ray.get(probe)
            except ray.exceptions.RayError as exc:
                # ActorUnavailableError: Ray is restarting it, or waits for a place to. ActorUnschedulableError:
                # its Ray node is gone, which _settle says and handles, unless the node had been placed again
                # there (a second loss before it rejoined). Anything else (it failed to start): a new actor.
                kind = type(exc).__name__
                if kind == "ActorUnschedulableError" and n not in self.pinned:
                    if self.placed[n] not in {h.node_id for h in hosts_from_ray(ray.nodes())}:
                        self._replace(n, "its Ray node is gone")
                elif kind != "ActorUnavailableError":
                    self._replace(n, exc)
                continue
            checkpoint, _ = ray.get(self.keeper.get.remote(n))
            cfg = {**self.cfg, "peers": {**self.urls, n: addr["url"]}, "allocation": self._allocations()}
            self.rejoining[n] = (addr, self.actors[n].start.remote(cfg, self.token, checkpoint))
        for n, (addr, ref) in list(self.rejoining.items()):
            if ref is None:
                continue
            ready, _ = ray.wait([ref], timeout=0)
            if not ready:
                continue
            del self.rejoining[n]
            try:
                info = ray.get(ref)
            except ray.exceptions.RayError as exc:
                print(f"{n}: restarted but did not start serving: {_cause(exc)}; trying again", flush=True)
                continue
            self._rejoined(n, addr, info)

    def _replace(self, n: str, why) -> None:
        """A new actor for node n, placed by its placement's rule among the live Ray nodes."""
        self.ray.kill(self.actors[n], no_restart=True)
        self.probes.pop(n, None)  # the old actor's
        self.attempts[n] = self.attempts.get(n, 0) + 1
        if self.attempts[n] > MAX_ATTEMPTS:
            if self.attempts[n] == MAX_ATTEMPTS + 1:
                print(f"{n}: gave up after {MAX_ATTEMPTS} new actors; it stays lost", flush=True)
            self.rejoining[n] = (None, None)  # never polled again
            return
        if n not in self.pinned:  # the others where they are or are going (a dead Ray node counts for none)
            others = {m: self.where[m]["ray_node"] if m in self.pinned else self.placed[m] for m in self.actors if m != n}
            self.placed[n] = choose_host(self.idn.nodes[self.idn.node_index[n]].tier, hosts_from_ray(self.ray.nodes()),
                                         others, {x.id: x.tier for x in self.idn.nodes})  # fmt: skip
        print(f"{n}: a new actor {self._placement_of(n)} ({why if isinstance(why, str) else _cause(why)})", flush=True)
        self._new_actor(n)

    def _rejoined(self, n: str, addr: dict, info: dict) -> None:
        self.where[n] = addr
        self.urls[n] = addr["url"]  # self.cfg["peers"] is this dict: a node started later gets it
        self.lost.pop(n, None)
        for m, a in self.actors.items():
            if m != n:
                a.set_peer.remote(n, addr["url"])
        self.sentinels[n] = self.actors[n].serving.remote()
        path = self.run_dir / "serve.json"  # its peers only: other keys (the dashboard's URL) stay
        cfg = {**json.loads(path.read_text()), "peers": self.urls}
        path.with_suffix(".json.tmp").write_text(json.dumps(cfg, indent=2))
        os.replace(path.with_suffix(".json.tmp"), path)
        self._write_nodes()
        state = f"resumed from its checkpoint at slot {info['resumed_from']}" if info["resumed_from"] is not None else "no checkpoint"
        held = "every model" if info["allocation"] == "all" else f"{len(info['allocation'])} model(s)"
        print(f"{n}: rejoined on Ray node {addr['ray_node'][:8]} ({addr['host']}) at {addr['url']}, {state}, holding {held}",
              flush=True)  # fmt: skip

    def _allocations(self) -> dict:
        """Every node's newest allocation the keeper has (the launch's for the others)."""
        kept = self.ray.get(self.keeper.allocations.remote())
        return {**self.cfg["allocation"], **{n: a for n, a in kept.items() if isinstance(a, list)}}

    def _mirror(self) -> None:
        """Each checkpoint new at the keeper into RUN/state/NODE.npz (write, then rename)."""
        self.seq, fresh = self.ray.get(self.keeper.since.remote(self.seq))
        state = self.run_dir / "state"
        for n, data in fresh.items():
            state.mkdir(exist_ok=True)
            tmp = state / f"{n}.npz.tmp"
            tmp.write_bytes(data)
            tmp.replace(state / f"{n}.npz")

    # ---- stopping ---------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> None:
        """Each node finishes what is in flight and stops; then every actor is
        killed, whatever its state (a restarting one too), and the keeper last."""
        if self.done:
            return
        self.done, ray = True, self.ray
        live = [a for n, a in self.actors.items() if n not in self.lost]
        if live:
            ray.wait([a.stop.remote() for a in live], num_returns=len(live), timeout=timeout)
        if self.keeper is not None and hasattr(self, "run_dir"):
            try:
                self._mirror()
            except Exception as exc:  # noqa: BLE001 (the last checkpoints are a courtesy; stopping is not)
                print(f"the last checkpoints were not mirrored: {_cause(exc)}", flush=True)
        for a in [*self.actors.values(), *([self.keeper] if self.keeper is not None else [])]:
            ray.kill(a, no_restart=True)
        if self.started_ray:
            ray.shutdown()

    def stopped(self, seconds: float) -> str:
        return f"{len(self.actors)} node actor(s) and the checkpoint keeper killed in {seconds:.1f} s"


def _on(ray_node: str):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=ray_node, soft=False)


def _runtime_env() -> dict:
    """The driver's own idn package, shipped to every Ray node by Ray (no
    shared filesystem; Ray takes a local directory at ``ray.init`` only)."""
    package = Path(__file__).resolve().parents[1]  # src/idn: the code this driver runs
    return {"py_modules": [str(package)], "excludes": ["__pycache__"]}


def _cause(exc: Exception) -> str:
    cause = getattr(exc, "cause", None) or exc
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"
