"""Where webhooks may send (executor.run.outbound): address classes, the operator's
allow-list, one resolution pinned for the connection, and the signature header."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import httpx
import pytest
from pydantic import ValidationError

from executor.errors import AddressRefused, WebhookRejected
from executor.run.outbound import AllowList, address_class, pin
from executor.run.webhook import answered, sign
from executor.settings import Settings

NOTHING_ALLOWED = AllowList.parse([])


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.0.1", "private"),
        ("::ffff:10.1.2.3", "private"),
        ("fd12:3456::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "reserved"),
        ("93.184.216.34", None),
        ("172.32.0.1", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_classes(address: str, kind: str | None) -> None:
    assert address_class(ipaddress.ip_address(address)) == kind


def test_a_name_is_checked_on_every_address_it_resolves_to() -> None:
    """One public and one loopback address: refused, whichever comes first."""
    with pytest.raises(AddressRefused) as refused:
        pin(
            "https://hooks.example/x",
            NOTHING_ALLOWED,
            lambda host, port: ["93.184.216.34", "127.0.0.1"],
        )
    assert refused.value.address == "127.0.0.1"
    assert refused.value.details == {"field": "webhook_url", "address": "127.0.0.1"}
    assert "host 'hooks.example' resolves to 127.0.0.1, a loopback address" in refused.value.message


def test_the_request_goes_to_the_checked_address_under_the_name() -> None:
    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["93.184.216.34"]

    target = pin("https://Hooks.Example:8443/in?sig=1", NOTHING_ALLOWED, resolver)
    assert asked == [("hooks.example", 8443)]  # resolved once
    assert str(target.request_url) == "https://93.184.216.34:8443/in?sig=1"
    assert target.headers == {"Host": "hooks.example:8443"}
    assert target.extensions == {"sni_hostname": "hooks.example"}


def test_listed_hosts_may_resolve_to_private_addresses() -> None:
    allowed = AllowList.parse(["hooks.lan", "LOCALHOST:8080", "10.0.0.7:8443"])
    private = ["10.0.0.7"]
    assert pin("http://hooks.lan:1234/", allowed, lambda h, p: private).address == "10.0.0.7"
    assert pin("http://localhost:8080/", allowed, lambda h, p: ["127.0.0.1"]).address
    assert pin("https://10.0.0.7:8443/", allowed, lambda h, p: private).address == "10.0.0.7"
    with pytest.raises(AddressRefused):  # listed with another port
        pin("http://localhost:8081/", allowed, lambda h, p: ["127.0.0.1"])
    with pytest.raises(AddressRefused):  # a name resolving to a listed address is not listed
        pin("http://other.lan:8443/", allowed, lambda h, p: private)


def test_the_real_resolver_refuses_localhost() -> None:
    with pytest.raises(AddressRefused) as refused:
        pin("http://localhost:9/", NOTHING_ALLOWED)
    assert refused.value.address in ("127.0.0.1", "::1")


def test_a_host_that_does_not_resolve_is_refused() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(AddressRefused) as refused:
        pin("http://nowhere.invalid/", NOTHING_ALLOWED, fails)
    assert "host 'nowhere.invalid' does not resolve" in refused.value.message


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/", "must be an http:// or https:// URL with a host"),
        ("http:///path", "must be an http:// or https:// URL with a host"),
        ("http://u:p@example.com/", "user info"),
        ("http://example.com/#frag", "fragment"),
        ("http://xn--/", "is not a URL"),
        ("http://[zz]/", "is not a URL"),
        ("http://example.com/" + "a" * 2000, "longer than 2000"),
    ],
)
def test_urls_that_are_not_http_receivers(url: str, says: str) -> None:
    with pytest.raises(WebhookRejected) as rejected:
        pin(url, NOTHING_ALLOWED, lambda h, p: ["93.184.216.34"])
    assert type(rejected.value) is WebhookRejected
    assert says in rejected.value.message
    assert rejected.value.field == "webhook_url"


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"eventType":"onSubmit"}'
    expected = hmac.new(b"whsec_k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("whsec_k", 1700000000, body) == f"t=1700000000,v1={expected}"


@pytest.mark.parametrize(
    ("code", "headers", "status", "retried", "says"),
    [
        (204, {}, "succeeded", False, "HTTP 204 No Content in 7 ms"),
        (
            301,
            {"Location": "https://elsewhere/"},
            "failed",
            False,
            "redirect to https://elsewhere/",
        ),
        (304, {}, "failed", False, "redirect to (no Location header) not followed"),
        (404, {}, "failed", False, "HTTP 404 Not Found in 7 ms"),
        (429, {}, "failed", True, "HTTP 429 Too Many Requests in 7 ms"),
        (503, {}, "failed", True, "HTTP 503 Service Unavailable in 7 ms"),
    ],
)
def test_what_an_answer_means(
    code: int, headers: dict[str, str], status: str, retried: bool, says: str
) -> None:
    delivery = answered(httpx.Response(code, headers=headers), 7)
    assert (delivery.status, delivery.retryable, delivery.http_status) == (status, retried, code)
    assert says in delivery.summary


@pytest.mark.parametrize("entry", ["http://hooks.lan/", "hooks.lan/path", "hooks.lan:99999", ""])
def test_allowed_hosts_setting_takes_hosts_only(entry: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(webhook_allowed_hosts=[entry])
    assert f"webhook allowed host {entry!r}" in str(refused.value)
