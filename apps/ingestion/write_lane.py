"""The write lane: ASGI POSTs to the ingest endpoints go straight to their handlers, not through Django's stack.

A write costs the server a few milliseconds of Python per 5,000 points in its parser and COPY encoder; Django's
ASGI handler added about as much again around it: the full middleware chain (sessions, CSRF, auth, messages,
static files), DRF's dispatch, a new thread per request, and a database connection taken from the pool and set
up again for every request. On the two-core benchmark machine that was a third of the web process's CPU per
batch (bench/ingest.py; see docs/ingestion.md).

The lane serves exactly the requests Django would route to the three write views (resolved by Django's own URL
resolver), POST only, and runs the same handlers (apps/ingestion/views.py) with the middleware that applies to
a cookie-less request authorised by a write key: request metrics, security headers (and the HTTPS redirect),
host validation, X-Frame-Options. It does without sessions, CSRF (the views are exempt), user authentication,
messages and static files, none of which a write key request uses. Everything else goes to Django unchanged.

Handlers run in a fixed pool of INGEST_MAX_IN_FLIGHT threads, each keeping its database connection between
writes (given back after a database error); a write arriving while all are busy is answered 429 in its
endpoint's error format, as the handlers' own bound does.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.exception import convert_exception_to_response
from django.db import connections
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import Resolver404, resolve
from django.utils.log import log_response
from django.utils.module_loading import import_string

from analytics_platform.api_paths import api_path_twin
from apps.ingestion import views

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# The middleware a write-key request needs, in settings.MIDDLEWARE's order (each must be listed there).
LANE_MIDDLEWARE = (
    "analytics_platform.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)


class WriteLane:
    """ASGI application: the write endpoints' POSTs handled directly, everything else passed to `app`."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self.workers = settings.INGEST_MAX_IN_FLIGHT
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="write-lane")
        self._busy = 0  # handlers submitted and not finished; only the event loop's thread touches it
        self._handle = _middleware_chain()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _route(scope)
        if route is None:
            return await self.app(scope, receive, send)
        body = await _body(receive)
        if body is None:
            return None  # the client went away before sending the whole body
        try:
            request = ASGIRequest(scope, io.BytesIO(body))
        except UnicodeDecodeError:
            return await _send_response(HttpResponseBadRequest(), send)  # as Django's handler answers it
        request.resolver_match = route
        if self._busy >= self.workers:
            response = views.WRITE_VIEWS[route.url_name].overloaded()
        else:
            self._busy += 1
            try:
                loop = asyncio.get_running_loop()
                response = await loop.run_in_executor(self._executor, self._respond, request)
            finally:
                self._busy -= 1
        await _send_response(response, send)
        return None

    def _respond(self, request: HttpRequest) -> HttpResponse:
        """Run the middleware and handler in a lane thread; a database error gives the connection back."""
        try:
            response = self._handle(request)
            if response.status_code >= 400:  # logged as Django's handler logs them
                log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
            return response
        finally:
            connection = connections["default"]
            if connection.errors_occurred:
                connection.close_if_unusable_or_obsolete()

    def close(self) -> None:
        """Give every lane thread's database connection back and stop the threads (tests, shutdown)."""
        barrier = threading.Barrier(self.workers)

        def close_own_connection() -> None:
            barrier.wait(timeout=30)  # all workers at once: each task runs in a thread of its own
            connections.close_all()

        for future in [self._executor.submit(close_own_connection) for _ in range(self.workers)]:
            future.result()
        self._executor.shutdown()


def _route(scope: Scope):
    """Django's resolver match for a POST to one of the write views, else None (Django serves it)."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    try:
        match = resolve(scope["path"])
    except Resolver404:
        twin = api_path_twin(scope["path"])  # served in place with or without its trailing slash, as Django does
        if twin is None:
            return None
        match = resolve(twin)
    return match if match.url_name in views.WRITE_VIEWS else None


async def _body(receive: Receive) -> bytes | None:
    """The request body, reading at most one byte past INGEST_MAX_BODY_BYTES (the handler then answers 413)."""
    limit = settings.INGEST_MAX_BODY_BYTES
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if size <= limit:
            chunks.append(chunk)
            size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)[: limit + 1]


def _middleware_chain() -> Callable[[HttpRequest], HttpResponse]:
    """LANE_MIDDLEWARE around the write handler, built as Django builds its own chain: every layer wrapped in
    Django's convert_exception_to_response, so an exception (a disallowed host, a crash) becomes the response
    Django would give, which the outer layers still see (metrics, security headers)."""
    missing = [path for path in LANE_MIDDLEWARE if path not in settings.MIDDLEWARE]
    if missing:
        raise RuntimeError(f"The write lane's middleware must be in settings.MIDDLEWARE: {missing}")

    def handler(request: HttpRequest) -> HttpResponse:
        match = request.resolver_match
        return views.WRITE_VIEWS[match.url_name].handle(request, *match.args, **match.kwargs)

    chain = convert_exception_to_response(handler)
    for path in reversed(sorted(LANE_MIDDLEWARE, key=settings.MIDDLEWARE.index)):
        chain = convert_exception_to_response(import_string(path)(chain))
    return chain


async def _send_response(response: HttpResponse, send: Send) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})
