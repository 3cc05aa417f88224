"""The private-address check: every host form, with and without a proxy, through our fetcher.

The fake origin on 127.0.0.1 plays the target and, when ``fetch.proxy`` is set, the proxy; a
refused request must never reach it.
"""

from __future__ import annotations

import ipaddress

import pytest

from aggregator.clock import FakeClock
from aggregator.config.settings import FetchSettings
from aggregator.content.urls import host_address, is_public
from aggregator.fetch import Fetcher

from .origin import Origin, Reply

NUMERIC_LOOPBACK = ["2130706433", "0x7f000001", "127.1", "017700000001", "0x7f.0.0.1", "127.0.0.1."]


def _settings(**changes: object) -> FetchSettings:
    return FetchSettings(per_host_delay=0, max_retries=0, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", NUMERIC_LOOPBACK)
async def test_numeric_hosts_are_refused_through_a_proxy(
    origin: Origin, clock: FakeClock, host: str
) -> None:
    """With fetch.proxy set, a numeric loopback host is checked as the IP it is, not sent on."""
    url = origin.route(f"http://{host}:{origin.port}/feed", Reply("<rss/>"))
    async with Fetcher(_settings(proxy=origin.proxy_url), clock) as fetcher:
        result = await fetcher.fetch(url)
    assert result.error is not None and result.error.startswith(
        "refusing private address 127.0.0.1"
    )
    assert origin.requests == []


async def test_public_numeric_host_goes_to_the_proxy_as_an_address(
    origin: Origin, clock: FakeClock
) -> None:
    """A public host written as a number reaches the proxy in its dotted form, never as a name."""
    origin.route(f"http://8.8.8.8:{origin.port}/feed", Reply("<rss/>"))
    async with Fetcher(_settings(proxy=origin.proxy_url), clock) as fetcher:
        result = await fetcher.fetch(f"http://134744072:{origin.port}/feed")
    assert result.status_code == 200, result.error
    assert [r.target for r in origin.requests] == [f"http://8.8.8.8:{origin.port}/feed"]


@pytest.mark.parametrize(
    "host",
    [
        "[64:ff9b::7f00:1]",
        "[64:ff9b:1::7f00:1]",
        "[2002:7f00:1::]",
        "[::7f00:1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:0:7f00:1]",
        "[fe80::1%25lo]",
    ],
)
async def test_ipv6_forms_of_private_addresses_are_refused(
    origin: Origin, clock: FakeClock, host: str
) -> None:
    """NAT64, 6to4, IPv4-compatible and -mapped addresses are judged by their IPv4 address."""
    async with Fetcher(_settings(), clock) as fetcher:
        result = await fetcher.fetch(f"http://{host}:{origin.port}/feed")
    assert result.error is not None and result.error.startswith("refusing private address"), (
        result.error
    )


async def test_a_redirect_to_a_numeric_loopback_is_refused(
    origin: Origin, clock: FakeClock
) -> None:
    """Every redirect hop is checked: a public-looking proxy answer cannot lead to 127.1."""
    start = origin.route(
        "http://8.8.8.8/start",
        Reply(status=302, headers={"Location": f"http://127.1:{origin.port}/x"}),
    )
    origin.route(f"http://127.1:{origin.port}/x", Reply("<rss/>"))
    async with Fetcher(_settings(proxy=origin.proxy_url), clock) as fetcher:
        result = await fetcher.fetch(start)
    assert result.error is not None and result.error.startswith(
        "refusing private address 127.0.0.1"
    )
    assert [r.target for r in origin.requests] == ["http://8.8.8.8/start"]


def test_host_forms_are_read_as_addresses() -> None:
    """Every numeric spelling of loopback is 127.0.0.1; host names are not addresses."""
    loopback = ipaddress.ip_address("127.0.0.1")
    assert all(host_address(h) == loopback for h in NUMERIC_LOOPBACK)
    assert host_address("example.com") is None and host_address("1.2.3.4.example") is None
    assert is_public(ipaddress.ip_address("64:ff9b::808:808"))
    assert not is_public(ipaddress.ip_address("64:ff9b::a00:1"))
