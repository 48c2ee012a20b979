"""The Ray side of ``idn serve --backend ray``: one IDN node inside one Ray
actor (:class:`NodeActor`), and the store that keeps every node's newest
checkpoint off the node's machine (:class:`CheckpointKeeper`). The driver
side is :mod:`.ray_backend`.

A :class:`NodeActor` runs the same :class:`.node.Node` as a node process
does, in the actor's event loop (Ray runs the ``async`` methods of an actor
on one asyncio loop), serving HTTP on a socket it binds on its Ray node's
address. Nothing of Ray is on a request's path: requests and control
messages travel node to node over HTTP, as with the local launcher.

What reaches the actor comes through Ray, not a shared filesystem: the code
(the driver's ``idn`` package, as a ``runtime_env`` py_module), the scenario
(the driver's :class:`~idn.model.network.IDN`, pickled, through the object
store), the model files (their bytes, through the object store, written to a
temporary directory on the actor's machine), and the run's configuration and
token (arguments of :meth:`NodeActor.start`).

Every :data:`PUSH_SECONDS` the actor looks at its node's checkpoint file and
allocation; when either changed it sends them to the keeper, an actor on the
driver's Ray node. A node restarted on another machine starts from what the
keeper holds: its allocation, and its policy state for a live policy. What
a lost machine wrote in its last :data:`PUSH_SECONDS` is lost with it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

PUSH_SECONDS = 0.25
DIR_PREFIX = "idn-ray-"  # an actor's temporary directory: the model files, its checkpoint


def sweep_stale() -> None:
    """Remove the temporary directories of this machine's actors that died
    without stopping (their machine's Ray node lost, a kill): whose owner
    process is gone."""
    for d in [d for d in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*") if d.is_dir()]:
        try:
            os.kill(int((d / "owner.pid").read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):  # not ours to judge (another user's, half written): leave it
            pass


class NodeActor:
    """One IDN node (module docstring). Created by the driver; binds its
    listening socket at once, so the driver learns every URL (:meth:`address`)
    before any node starts (:meth:`start`)."""

    def __init__(self, node_id: str, keeper: str):
        import ray

        from .launcher import bind

        # the keeper by name: an actor handle as a constructor argument is kept by Ray for restarts (and warned about)
        self.node_id, self.keeper = node_id, ray.get_actor(keeper)
        self.bundle = ray.get(ray.get(self.keeper.bundle.remote())[0])  # (see CheckpointKeeper.bundle)
        self.host = ray.util.get_node_ip_address()
        self.sock = bind(self.host, 0)
        port = self.sock.getsockname()[1]
        self.url = f"http://[{self.host}]:{port}" if ":" in self.host else f"http://{self.host}:{port}"
        self.ray_node = ray.get_runtime_context().get_node_id()
        sweep_stale()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{node_id}-"))
        (self.dir / "owner.pid").write_text(str(os.getpid()))
        for rel, data in self.bundle["files"].items():  # the model files, from the object store
            path = self.dir / "models" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (self.dir / "run" / "state").mkdir(parents=True)
        self.node = self.runner = None
        self.peers: dict[str, str] = {}  # every node's URL: the node's own map (Node.peers is this dict)
        self.stopped = asyncio.Event()
        self._push_task = None

    async def address(self) -> dict:
        return {"url": self.url, "host": self.host, "ray_node": self.ray_node, "pid": os.getpid()}

    async def start(self, cfg: dict, token: str, checkpoint: bytes | None = None) -> dict:
        """Build, warm and serve the node with the run's configuration;
        ``checkpoint``: the keeper's newest one of this node (a restart)."""
        from .node import Node, open_site

        t0 = time.perf_counter()
        # before any await: a set_peer sent after this call must win over the run's older cfg
        self.peers.update({**cfg["peers"], self.node_id: self.url})
        cfg = {**cfg, "models": str(self.dir / "models"), "run_dir": str(self.dir / "run"), "peers": self.peers}
        state = self.dir / "run" / "state" / f"{self.node_id}.npz"
        if checkpoint is not None:
            state.write_bytes(checkpoint)
        await asyncio.to_thread(warm_up, self.bundle["idn"], cfg.get("policy"))
        node = Node(cfg, self.node_id, self.bundle["idn"], token)
        await node.start()
        self.node, self.runner = node, await open_site(node, self.sock)
        self._push_task = asyncio.create_task(self._push_loop(state))
        return {"resumed_from": node.control.resumed_from if node.resumed else None, "allocation": self.allocation(),
                "models_loaded": len(node.store.sessions), "seconds": time.perf_counter() - t0}  # fmt: skip

    def allocation(self) -> list[str] | str:
        node = self.node
        if node.node.repository:
            return "all"
        return [node.idn.models[m].id for m in node.hosts[node.v].nonzero()[0]]

    async def set_peer(self, node_id: str, url: str | None) -> None:
        """Another node now answers at ``url`` (it was restarted elsewhere), or
        (None) is lost: a node with no address for its next hop skips it at
        once, as it skips one that refuses, where a machine gone from the
        network would make every request wait out the hop timeout."""
        if url is None:
            self.peers.pop(node_id, None)
        else:
            self.peers[node_id] = url

    async def serving(self) -> None:
        """Returns when the node stops; raises in the caller if the actor dies first."""
        await self.stopped.wait()

    async def _push_loop(self, state: Path) -> None:
        import ray

        last = (None, None)
        while True:
            await asyncio.sleep(PUSH_SECONDS)
            try:
                st = state.stat()
                stamp = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = None
            now = (stamp, self.node.version)
            if now == last:
                continue
            data = state.read_bytes() if stamp is not None and stamp != last[0] else None
            try:
                await self.keeper.put.remote(self.node_id, data, self.allocation())
                last = now
            except ray.exceptions.RayError as exc:  # the keeper is on the driver's machine: it goes when the run goes
                print(f"node {self.node_id}: checkpoint not kept: {type(exc).__name__}: {exc}", flush=True)

    async def stop(self) -> None:
        """Finish what is in flight and stop serving; forget the local files."""
        if self._push_task is not None:
            self._push_task.cancel()
        if self.runner is not None:
            await self.runner.cleanup()
            await self.node.stop()
        else:
            self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.stopped.set()


def warm_up(idn, policy: dict | None) -> None:
    """Compile the node's numba kernels before it serves. A Ray session
    unpacks the code afresh, so numba's cache (kept beside the source files,
    stamped with their times) starts empty there, and a live policy's first
    round would compile for seconds in the event loop, stalling every
    request. A few slots of the simulator run the policy's kernels (without a
    policy, the capacity shares'). The actors of one machine take turns (a
    file lock): one compiles, the others load what it cached."""
    import fcntl

    import numpy as np

    from .. import serving
    from .launcher import allocation_from_policy
    from .routing import live_request_types

    with open(Path(tempfile.gettempdir()) / "idn-numba-warm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if policy:
            allocation_from_policy(idn, policy["name"], slots=3, seed=int(policy.get("seed", 0)), params=policy.get("params"))
        else:
            rt = live_request_types(idn)
            serving.capacity_share(rt, np.ones(rt.n_types))


class CheckpointKeeper:
    """Every node's newest checkpoint (bytes of the node's ``.npz``) and
    allocation, in memory on the driver's Ray node. ``seq`` numbers the
    changes, so the driver mirrors each new checkpoint into ``RUN/state/``."""

    def __init__(self, bundle: list):
        self._bundle = bundle
        self.checkpoints: dict[str, tuple[int, bytes]] = {}
        self.allocation: dict[str, list[str] | str] = {}
        self.seq = 0

    def bundle(self) -> list:
        """[a reference to the scenario and the model files]: node actors fetch
        them from here, not as constructor arguments, which Ray would keep for
        every restart (and warns about)."""
        return self._bundle

    def put(self, node_id: str, checkpoint: bytes | None, allocation) -> None:
        self.seq += 1
        if checkpoint is not None:
            self.checkpoints[node_id] = (self.seq, checkpoint)
        self.allocation[node_id] = allocation

    def get(self, node_id: str) -> tuple[bytes | None, list[str] | str | None]:
        ckpt = self.checkpoints.get(node_id)
        return (ckpt[1] if ckpt else None), self.allocation.get(node_id)

    def since(self, seq: int) -> tuple[int, dict[str, bytes]]:
        """(seq now, the checkpoints newer than ``seq``)."""
        return self.seq, {n: c for n, (s, c) in self.checkpoints.items() if s > seq}

    def allocations(self) -> dict:
        return dict(self.allocation)
