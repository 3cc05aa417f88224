"""What one process of the daemon does: its ``Role`` (``aggregator run --role``).

``all`` is the single daemon (fetches and serves), ``worker`` fetches and serves only its health
and metrics, ``web`` serves feeds and never writes sources or entries. The questions the runtime
asks of a role are properties here, so no module compares role names.
"""

from __future__ import annotations

from enum import StrEnum

from ..config.settings import ServerSettings


class Role(StrEnum):
    ALL = "all"
    WORKER = "worker"
    WEB = "web"

    @property
    def fetches(self) -> bool:
        """Claims due sources, runs the scheduler and maintenance jobs, writes the store."""
        return self is not Role.WEB

    @property
    def serves_feeds(self) -> bool:
        """Answers feed, OPML and status requests (a worker serves only health and metrics)."""
        return self is not Role.WORKER

    def extra_web_processes(self, server: ServerSettings) -> int:
        """How many web processes this process forks beside itself (``[server] processes``)."""
        return server.processes - 1 if self.serves_feeds else 0

    def port(self, server: ServerSettings) -> int | None:
        """The port it serves HTTP on (None: a worker without ``worker_port``)."""
        return server.worker_port if self is Role.WORKER else server.port

    def port_key(self) -> str:
        """The ``[server]`` key that ``--port`` overrides for this role."""
        return "worker_port" if self is Role.WORKER else "port"
