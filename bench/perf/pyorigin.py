"""Fallback static origin when nginx is missing: Starlette's StaticFiles on uvicorn (ETag, 304).

Run: ``python -m perf.pyorigin ROOT PORT`` from bench/.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles


def main() -> None:
    root, port = sys.argv[1], int(sys.argv[2])
    app = Starlette(routes=[Mount("/", StaticFiles(directory=root))])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
