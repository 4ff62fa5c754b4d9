"""Serve HTTP and WebSockets with one daphne process per core on one socket, until SIGINT/SIGTERM."""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand, CommandError

from analytics_platform.web_processes import (
    WebProcesses,
    WebProcessesFailed,
    default_process_count,
    listening_socket,
)


class Command(BaseCommand):
    help = (
        "Run the web server: --processes daphne processes (default WEB_PROCESSES, else one per core) sharing "
        "one listening socket. A process that dies is started again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--bind", default="127.0.0.1", help="IPv4 address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000).")
        parser.add_argument("--processes", type=int, default=None, help="daphne processes (default: one per core).")
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help="Trust X-Forwarded-For/-Proto from the proxy in front (as daphne's own option).",
        )

    def handle(self, *args, bind: str, port: int, processes: int | None, proxy_headers: bool, **options) -> None:
        try:
            count = processes if processes is not None else default_process_count()
        except ValueError as error:
            raise CommandError(str(error)) from error
        if count < 1:
            raise CommandError(f"--processes must be at least 1, not {count}.")
        try:
            sock = listening_socket(bind, port)
        except ValueError as error:
            raise CommandError(str(error)) from error
        except OSError as error:
            raise CommandError(f"Cannot listen on {bind}:{port}: {error.strerror or error}.") from error
        server = WebProcesses(sock=sock, count=count, daphne_arguments=["--proxy-headers"] if proxy_headers else [])
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: server.request_stop())
        server.start()
        self.stderr.write(f"serve: {count} daphne process(es) on http://{bind}:{port}/ (pids {server.pids()})")
        try:
            server.watch()
        except WebProcessesFailed as error:
            raise CommandError(f"{error}.") from error
        finally:
            server.stop()
            sock.close()
