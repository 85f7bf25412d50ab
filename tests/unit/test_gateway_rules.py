"""Run tokens, the gateway's path policy and the platform settings (no Docker, no sockets)."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from pydantic import ValidationError

from executor.gateway.policy import PathRefused, PlatformTargets, check_path
from executor.settings import PlatformTarget, Settings
from executor.tokens import TOKEN_PREFIX, hash_token, mint_token, token_from_headers

BASE = "/api/projects/p1"


def test_minted_tokens_are_random_and_stored_as_sha256() -> None:
    tokens = {mint_token() for _ in range(200)}
    assert len(tokens) == 200
    token = tokens.pop()
    assert token.startswith(TOKEN_PREFIX)
    assert len(token) >= len(TOKEN_PREFIX) + 43  # 32 random bytes, base64url
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in hash_token(token)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Authorization": "Bearer tok-1"}, "tok-1"),
        ({"authorization": "bearer tok-1"}, "tok-1"),
        ({"Authorization": "X-API-Key: tok-1"}, "tok-1"),
        ({"Authorization": "x-api-key:tok-1"}, "tok-1"),
        ({"X-API-Key": "tok-1"}, "tok-1"),
        ({"Authorization": "Basic dXNlcjpwdw==", "X-API-Key": "tok-1"}, "tok-1"),
        ({}, None),
        ({"Authorization": "Bearer "}, None),
        ({"Authorization": "Basic dXNlcjpwdw=="}, None),
        ({"X-API-Key": "  "}, None),
    ],
)
def test_token_forms_the_gateway_accepts(headers: dict[str, str], expected: str | None) -> None:
    assert token_from_headers(httpx.Headers(headers)) == expected


@pytest.mark.parametrize(
    "target",
    [
        BASE,
        f"{BASE}/",
        f"{BASE}/assets/a1/issues",
        f"{BASE}/assets/a1?fields=id,labels&q=a%20b",
        f"{BASE}/assets/a%2Fb",  # an encoded slash inside one id stays one segment upstream
    ],
)
def test_paths_under_the_base_are_forwarded_unchanged(target: str) -> None:
    assert check_path(target, BASE) == target


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("http://evil.example/api/projects/p1/x", "not a full URL"),
        ("https://127.0.0.1:9000/api/projects/p1", "not a full URL"),
        ("evil.example:443", "not a full URL"),
        ("*", "not a full URL"),
        ("//evil.example/api/projects/p1/x", "empty segment"),
        ("/api/projects/p2/assets", "only paths under /api/projects/p1/"),
        ("/api/projects/p10/assets", "only paths under /api/projects/p1/"),
        ("/api/projects", "only paths under /api/projects/p1/"),
        ("/admin", "only paths under /api/projects/p1/"),
        (f"{BASE}/../p2/assets", "'..' segment"),
        (f"{BASE}/./x", "'.' or '..' segment"),
        (f"{BASE}/%2e%2e/p2/assets", "'..' segment"),
        (f"{BASE}/%2E%2E/p2", "'..' segment"),
        (f"{BASE}/..%2fp2", "'..' segment"),
        (f"{BASE}%2f..%2fp2", "'..' segment"),
        (f"{BASE}/%252e%252e/p2", "'..' segment"),
        (f"{BASE}/x/..", "'..' segment"),
        (f"{BASE}//x", "empty segment"),
        (f"{BASE}/x\\..\\..\\p2", "backslash"),
        (f"{BASE}/%5c..%5cp2", "backslash"),
        (f"{BASE}/x%0d%0aHost:%20evil", "control character"),
        (f"{BASE}/x#frag", "fragment"),
    ],
)
def test_paths_outside_the_base_are_refused(target: str, why: str) -> None:
    with pytest.raises(PathRefused) as caught:
        check_path(target, BASE)
    assert why in str(caught.value)


def test_an_empty_base_path_still_refuses_tricks() -> None:
    assert check_path("/anything/below", "") == "/anything/below"
    for target in ("//evil.example/x", "/a/../b", "http://evil.example/"):
        with pytest.raises(PathRefused):
            check_path(target, "")


def test_targets_per_project_with_placeholder_and_overrides() -> None:
    settings = Settings(
        platform_api_url="http://platform.internal:8080/api/projects/{project_id}/",
        platform_credential="global-cred",
        platform_projects={
            "kili": PlatformTarget(url="https://kili.internal/api/label/v2", credential="k-cred"),
            "plain": PlatformTarget(url="http://other.internal"),
        },
        gateway_port=8765,
    )
    targets = PlatformTargets(settings)

    p1 = targets.for_project("p1")
    assert (p1.origin, p1.base_path, p1.credential) == (
        "http://platform.internal:8080",
        "/api/projects/p1",
        "global-cred",
    )
    assert targets.for_project("a:b@c").base_path == "/api/projects/a%3Ab%40c"
    kili = targets.for_project("kili")
    assert (kili.origin, kili.base_path, kili.credential) == (
        "https://kili.internal",
        "/api/label/v2",
        "k-cred",
    )
    assert targets.for_project("plain").credential == "global-cred"  # falls back
    assert targets.plugin_url("p1") == "http://127.0.0.1:8765/api/projects/p1"
    assert targets.plugin_url("plain") == "http://127.0.0.1:8765"
    assert "global-cred" not in repr(p1) and "global-cred" not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://platform.internal/api",
        "platform.internal/api",
        "http:///api",
        "http://user:pw@platform.internal/api",
        "http://platform.internal/api?key=secret",
        "http://platform.internal/api#x",
    ],
)
def test_unsafe_platform_urls_are_refused_at_start(url: str) -> None:
    with pytest.raises(ValidationError, match="platform API URL"):
        Settings(platform_api_url=url)
    with pytest.raises(ValidationError, match="platform API URL"):
        Settings(platform_projects={"p1": {"url": url}})
