"""The project's exceptions; every one derives from AggregatorError.

    AggregatorError
    ├── ConfigError        the config file is missing, unreadable or invalid (names file, source, field)
    ├── UsageError         the command line names something that does not exist
    ├── FetchError         a fetch failed (network, HTTP status, limits); carries a readable message
    │   └── NotAFeedError  the body is an HTML page or otherwise not a document we can read
    ├── ParseError         a document could not be turned into items
    ├── StoreError         the store failed (a database error is its ``__cause__``)
    │   └── StoreOutage    the database refused, dropped the connection or did not answer in time
    │       └── StoreUnavailable  seen from async code: down or hung, try again in ``retry_after`` s
    └── SelectionError     a feed query is invalid (bad regular expression, unknown feed)
        └── QueryError     the query parameters are malformed (HTTP 400, not 404)

Third-party exceptions are converted to these at the edge of the module that uses the library
(fetch.py for httpx, store/ for SQLAlchemy), so callers never import a library to catch its
errors.
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(AggregatorError):
    """The configuration is invalid; ``problems`` lists each one as a readable line."""

    def __init__(
        self, path: str, problems: list[str], lines: list[int | None] | None = None
    ) -> None:
        self.path = path
        self.problems = problems
        self.lines = lines if lines is not None else [None] * len(problems)  # each problem's line
        super().__init__(f"{path}: " + "; ".join(problems))


class UsageError(AggregatorError):
    """The command line asks for something that does not exist (an unknown source); exit 2."""


class FetchError(AggregatorError):
    """A fetch failed; the message is what the operator sees as the source's last error."""


class NotAFeedError(FetchError):
    """The body is not a feed (for example an HTML page)."""


class ParseError(AggregatorError):
    """A fetched document could not be parsed into items."""


class StoreError(AggregatorError):
    """The store failed: it could not be opened or migrated, or a statement failed (a bug, such
    as a constraint or a missing column). A database library's error is the ``__cause__``."""


class StoreOutage(StoreError):
    """The database is unreachable or too slow (refused, connection lost, timed out, locked): an
    outage to wait out, not a bug of ours (store/guard.py's ``is_outage``)."""


class StoreUnavailable(StoreOutage):
    """The database did not answer in time or refused (store/guard.py); nothing was done. Web
    requests answer 503 with ``Retry-After: retry_after``."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class SelectionError(AggregatorError):
    """A feed selection or query is invalid."""


class QueryError(SelectionError):
    """A feed URL's query parameters are malformed (a bad pattern, limit or cursor)."""
