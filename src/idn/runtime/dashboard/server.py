"""The dashboard's web server: one page and its assets (``static/``, served
from the package: nothing comes from another host), ``GET /api/snapshot``
(what :class:`.collect.Collector` gathered) and read-only proxies of each
node's ``/v1/state``, ``/v1/history`` and ``/metrics``
(``/api/nodes/{id}/state|history|metrics``), so the page talks to this
server alone.

Started by ``idn serve`` beside the nodes (``python -m
idn.runtime.dashboard.server RUN --fd N --watch-parent``: the launcher binds
the socket) or by ``idn dashboard RUN`` for a run started elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

from .collect import Collector

STATIC = Path(__file__).parent / "static"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# the browser may load and fetch from this server only (and draw data: images): offline by construction
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")  # fmt: skip
PROXIED = {"state": "/v1/state", "history": "/v1/history", "metrics": "/metrics"}


@web.middleware
async def _headers(request: web.Request, handler):
    resp = await handler(request)
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def make_app(run_dir: str | Path) -> web.Application:
    collector = Collector(run_dir)
    app = web.Application(middlewares=[_headers])
    app["collector"] = collector

    async def start(app):
        app["session"] = aiohttp.ClientSession()
        await collector.poll(app["session"])  # the first snapshot is whole
        app["poller"] = asyncio.create_task(collector.run(app["session"]))

    async def stop(app):
        app["poller"].cancel()
        await app["session"].close()

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        path = STATIC / name
        if "/" in name or path.suffix not in TYPES or not path.is_file():
            raise web.HTTPNotFound(text=f"no asset {name!r}")
        return web.Response(body=path.read_bytes(), content_type=TYPES[path.suffix])

    async def snapshot(request: web.Request) -> web.Response:
        w = request.query.get("slots", "60")
        if not w.isdigit():
            return web.json_response({"error": f"'slots' must be a positive integer, got {w!r}"}, status=400)
        return web.json_response(collector.snapshot(int(w)))

    async def proxy(request: web.Request) -> web.Response:
        node, what = request.match_info["node"], request.match_info["what"]
        view = collector.views.get(node)
        if view is None or what not in PROXIED:
            return web.json_response({"error": f"unknown node {node!r} or endpoint {what!r}"}, status=404)
        query = f"?since={request.query['since']}" if what == "history" and "since" in request.query else ""
        try:
            async with app["session"].get(f"{view.url}{PROXIED[what]}{query}", timeout=aiohttp.ClientTimeout(total=5)) as r:
                body = await r.read()
                return web.Response(body=body, status=r.status, content_type=r.content_type)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.json_response({"error": f"node {node!r} did not answer: {type(exc).__name__}"}, status=502)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.add_routes([
        web.get("/", asset), web.get("/static/{name}", asset), web.get("/api/snapshot", snapshot),
        web.get("/api/nodes/{node}/{what}", proxy), web.get("/favicon.ico", favicon),
    ])  # fmt: skip
    return app


async def favicon(request: web.Request) -> web.Response:
    return web.Response(body=(STATIC / "favicon.svg").read_bytes(), content_type=TYPES[".svg"])


async def serve(run_dir: str | Path, sock: socket.socket, parent: int | None = None, ready=None) -> None:
    """Serve until SIGTERM/SIGINT, or until process ``parent`` is no longer
    this one's parent (the ``idn serve`` that started it died)."""
    runner = web.AppRunner(make_app(run_dir), access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    if ready is not None:
        ready()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def orphan_watch():
        while os.getppid() == parent:
            await asyncio.sleep(0.5)
        stop.set()

    watch = asyncio.create_task(orphan_watch()) if parent is not None else None
    await stop.wait()
    if watch:
        watch.cancel()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m idn.runtime.dashboard.server")
    p.add_argument("run_dir")
    p.add_argument("--fd", type=int, help="a listening socket's descriptor (from idn serve)")
    p.add_argument("--watch-parent", action="store_true")
    args = p.parse_args(argv)
    parent = os.getppid()  # now, before the scenario loads: the launcher may die meanwhile
    sock = socket.socket(fileno=args.fd)
    asyncio.run(serve(args.run_dir, sock, parent if args.watch_parent else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
