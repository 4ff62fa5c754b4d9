"""Process start-up tuning shared by the web server (asgi.py) and the benchmarks that stand in for it."""

from __future__ import annotations

import gc


def startup_objects_freeze() -> None:
    """Import the URL configuration (and so every view), then move every object alive now out of the GC's reach.

    Python's full garbage collections walk every tracked object; a Django process holds ~140,000 after start-up,
    and a full pass over them took ~56 ms on the benchmark machine: a pause that lands on whatever request or
    live update is running, at the p95/p99 of every latency. Objects from start-up (modules, classes, settings,
    URL patterns) live as long as the process, so freezing them loses nothing; objects made later are
    collected as usual.
    """
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module now rather than on the first request
    gc.collect()
    gc.freeze()


class SyncMiddlewareChain:
    """The innermost middleware, sync only, so that Django runs the whole chain in one worker thread under ASGI.

    Django's MiddlewareMixin middlewares (security, sessions, CSRF, auth, messages...) are both sync and async
    capable. Under ASGI the chain starts async, and in async mode MiddlewareMixin runs each process_request and
    process_response hook through sync_to_async: a thread hop per hook, 15 per request here. Measured with
    daphne on GET /ping: 6.1 ms of CPU per request, against 0.6 ms for daphne alone. A sync-only innermost
    middleware makes every middleware outside it sync, so a request costs three hops: into the worker thread,
    back to the loop for Django's async view dispatch, and into the thread again for the (sync) view.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)
