"""Per-source request options: ``headers``, ``user_agent``, ``cookies``, ``referer`` and basic auth
(``username`` + ``password_env``) reach the fake origin on every request of their source (its
document, details, full text) and on no other source's; credentials stay on the source's own
origin across redirects; the password is shown nowhere; mistakes are config errors.
"""

from __future__ import annotations

import base64
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.cli import parser as cli
from aggregator.cli import sources as commands
from aggregator.clock import FakeClock
from aggregator.config import loading as config
from aggregator.config.settings import FetchSettings
from aggregator.errors import ConfigError
from aggregator.fetch import Fetcher
from aggregator.models import RequestOptions

from .ops_stack import config_text, free_port, running_stack
from .origin import Origin, Reply
from .test_fulltext import BLOG, NEWS, page, rss

PASSWORD = "pa55-w0rd-never-shown"
TOKEN = "tok-7f3a-never-shown"
BASIC = "Basic " + base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
DEFAULT_UA = FetchSettings().user_agent


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGG_TEST_PASSWORD", PASSWORD)
    monkeypatch.setenv("AGG_TEST_TOKEN", TOKEN)


@pytest.fixture
def other() -> Iterator[Origin]:
    """A second origin (another port: another origin for credentials)."""
    server = Origin().start()
    yield server
    server.stop()


OPTIONS = """user_agent = "MembersReader/2.0"
referer = "https://members.example/"
headers = { "Accept-Language" = "zh-CN", "X-Token" = "${AGG_TEST_TOKEN}" }
cookies = { session = "s-123", lang = "zh" }
username = "reader"
password_env = "AGG_TEST_PASSWORD"
"""


def sources(origin: Origin) -> str:
    """``members``: a summary-only feed with full text and every option; ``api``: a json source
    with details and one header; ``plain``: a feed with full text and no options."""
    origin.route(
        "/m/feed",
        Reply(rss([("1", origin.url("/m/a/1"), "Teaser")]), content_type="application/rss+xml"),
    )
    origin.route("/m/a/1", page(BLOG))
    origin.route(
        "/api/list",
        Reply(
            json.dumps({"items": [{"id": 1, "title": "T", "summary": "s"}]}),
            content_type="application/json",
        ),
    )
    origin.route(
        "/api/d/1", Reply(json.dumps({"html": "<p>full</p>"}), content_type="application/json")
    )
    origin.route(
        "/p/feed",
        Reply(rss([("1", origin.url("/p/a/1"), "Teaser")]), content_type="application/rss+xml"),
    )
    origin.route("/p/a/1", page(NEWS))
    return (
        f'[[sources]]\nid = "members"\nurl = "{origin.url("/m/feed")}"\nfulltext = true\n{OPTIONS}\n'
        f'[[sources]]\nid = "api"\nkind = "json"\nurl = "{origin.url("/api/list")}"\nitems = "items"\n'
        f'detail = {{ url = "{origin.url("/api/d/{id}")}", content = "html" }}\n'
        'headers = { "X-Api-Key" = "k-1" }\n'
        '[sources.fields]\nid = "id"\ntitle = "title"\ncontent = "summary"\n\n'
        f'[[sources]]\nid = "plain"\nurl = "{origin.url("/p/feed")}"\nfulltext = true\n'
    )


def write_config(tmp: Path, origin: Origin) -> Path:
    path = tmp / "aggregator.toml"
    path.write_text(config_text(tmp, free_port(), sources(origin)), encoding="utf-8")
    return path


async def test_each_source_sends_its_own_options_on_every_request_and_no_other(
    origin: Origin, clock: FakeClock, tmp_path: Path, secrets: None
) -> None:
    """The members feed, its article page, the api list and its detail carry their source's
    options; the plain source's feed and article page carry none of them."""
    settings = config.load(write_config(tmp_path, origin))
    outcomes = await commands.fetch_all(settings, settings.source_records(), clock=clock)
    assert all(o.error is None for o in outcomes), outcomes
    for path in ("/m/feed", "/m/a/1"):
        (hit,) = origin.hits(path)
        assert hit.headers["user-agent"] == "MembersReader/2.0"
        assert hit.headers["referer"] == "https://members.example/"
        assert hit.headers["accept-language"] == "zh-CN" and hit.headers["x-token"] == TOKEN
        assert hit.headers["cookie"] == "session=s-123; lang=zh"
        assert hit.headers["authorization"] == BASIC
    for path in ("/api/list", "/api/d/1"):
        (hit,) = origin.hits(path)
        assert hit.headers["x-api-key"] == "k-1" and hit.headers["user-agent"] == DEFAULT_UA
        assert not {"authorization", "cookie", "x-token", "referer"} & hit.headers.keys()
    for path in ("/p/feed", "/p/a/1"):
        (hit,) = origin.hits(path)
        assert hit.headers["user-agent"] == DEFAULT_UA
        assert (
            not {"authorization", "cookie", "x-token", "x-api-key", "referer"} & hit.headers.keys()
        )


async def test_credentials_stay_on_the_sources_origin_across_redirects(
    origin: Origin, other: Origin, clock: FakeClock
) -> None:
    """A redirect to another origin gets the source's User-Agent and headers but not its
    cookies, Authorization or basic auth; a redirect within the origin keeps them."""
    origin.route("/here", Reply(status=302, headers={"Location": "/there"}))
    origin.route("/there", Reply(status=302, headers={"Location": other.url("/away")}))
    other.route("/away", Reply("<rss/>"))
    request = RequestOptions(
        (("User-Agent", "R/1"), ("X-Token", "t"), ("Cookie", "a=b")), "reader", "pw"
    )
    settings = FetchSettings(allow_private_networks=True, per_host_delay=0, max_retries=0)
    async with Fetcher(settings, clock, rng=random.Random(1)) as fetcher:
        result = await fetcher.fetch(origin.url("/here"), request=request)
    assert result.ok, result.error
    (there,), (away,) = origin.hits("/there"), other.hits("/away")
    assert there.headers["cookie"] == "a=b" and there.headers["authorization"].startswith("Basic ")
    assert away.headers["user-agent"] == "R/1" and away.headers["x-token"] == "t"
    assert not {"cookie", "authorization"} & away.headers.keys()


async def test_the_password_is_shown_nowhere(
    origin: Origin,
    clock: FakeClock,
    tmp_path: Path,
    secrets: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not on the status pages, in /opml, in ``aggregator sources`` (table and JSON), in a
    failed fetch's error, nor in the log; nor the token given as ${AGG_TEST_TOKEN}."""
    path = write_config(tmp_path, origin)
    origin.route("/m/a/1", Reply("members only", status=401, content_type="text/plain"))
    with caplog.at_level(logging.DEBUG, logger="aggregator"):
        async with running_stack(path, clock) as st:
            await st.tick()
            async with st.client() as http:
                pages = [(await http.get(p)).text for p in ("/", "/sources/members", "/opml")]
            state = st.store.get_state("members")
    assert state is not None and state.detail_error is not None and "401" in state.detail_error
    assert cli.main(["--config", str(path), "sources"]) == 0
    assert cli.main(["--config", str(path), "--json", "sources"]) == 0
    out = capsys.readouterr().out
    assert out.count("members") >= 2  # both listings were captured
    shown = "\n".join(
        [*pages, out, caplog.text, state.detail_error, repr(config.load(path).source_records())]
    )
    secret_forms = (PASSWORD, TOKEN, BASIC.split()[1])
    assert [s for s in secret_forms if s in shown] == []
    assert "members" in pages[0] and "reader" not in pages[2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            'username = "u"\npassword_env = "AGG_TEST_UNSET_VAR"',
            r"password_env: environment variable AGG_TEST_UNSET_VAR is not set",
        ),
        ('username = "u"', "basic auth needs both username and password_env"),
        ('headers = { "Bad Header" = "x" }', r"headers\.Bad Header\.\[key\]: not a header name"),
        ('headers = { Host = "x" }', "Host is set by the fetcher"),
        ('headers = { "User-Agent" = "x" }', "give User-Agent with the source's user_agent key"),
        (
            'headers = { "X-A" = "${AGG_TEST_UNSET_VAR}" }',
            "environment variable AGG_TEST_UNSET_VAR is not set",
        ),
        ('cookies = { sid = "a;b" }', "a cookie value cannot hold"),
        ('referer = "not a url"', "not an http"),
        ('headers = { "X-A" = "1", "x-a" = "2" }', "a header name is given twice"),
    ],
)
def test_request_option_mistakes_are_config_errors(options: str, message: str) -> None:
    """Each mistake is a config error naming the source and the key."""
    head = '[[sources]]\nid = "a"\nurl = "https://example.org/feed"\n'
    with pytest.raises(ConfigError, match=message) as caught:
        config.parse(head + options)
    assert "sources[0] (id=a)" in str(caught.value)
