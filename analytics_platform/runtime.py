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
