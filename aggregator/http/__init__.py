"""Serving over HTTP: the app and its routes, feed replies with caching headers, the status pages,
admin actions and ``/metrics``.

``app.py`` builds the app, a Starlette router behind the access check (feeds, OPML, ``/healthz``,
``/readyz``); ``replies.py`` turns a feed request into status, headers and body without any
framework; ``routes.py`` and ``status.py`` are the operator's pages; ``operate.py`` mounts them
with live reload and metrics; ``limits.py`` holds the server up against hostile clients and sends
each response in one write.
"""
