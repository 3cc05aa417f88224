"""The operator's web surface: status pages (server-rendered HTML), admin actions, ``/metrics``.

``routes(ctx)`` returns the Starlette routes; ``operate.attach`` mounts them on the feed server's
app. The feeds themselves, ``/healthz`` and ``/readyz`` are served by ``server.py``.
"""

from .routes import WebContext, routes

__all__ = ["WebContext", "routes"]
