"""Registry settings: the address is host:port[/prefix], credentials come in pairs, the
password never shows; without EXECUTOR_REGISTRY there is no registry at all."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from executor.registry import Registry, is_digest_reference
from executor.settings import Settings

PASSWORD = "registry-password-never-shown"


def settings(**values: object) -> Settings:
    return Settings(operator_key="k", **values)


@pytest.mark.parametrize(
    "address", ["https://registry.lan:5443", "registry.lan:5443/", "reg lan:5443", ""]
)
def test_a_registry_address_with_a_scheme_or_stray_characters_is_refused(address: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(registry=address)
    (error,) = caught.value.errors()
    assert error["loc"] == ("images", "registry")
    assert error["msg"] == (
        f"Value error, {address!r} is not host:port[/prefix] (no scheme, e.g. "
        "'registry.lan:5443' or '10.0.0.5:5443/team')"
    )


@pytest.mark.parametrize("address", ["registry.lan:5443", "10.0.0.5:5443/team/plugins", "reg"])
def test_a_registry_address_is_host_port_and_prefix(address: str) -> None:
    registry = Registry.configured(settings(registry=address).images)
    assert registry is not None and registry.address == address


@pytest.mark.parametrize("values", [{"registry_user": "executor"}, {"registry_password": PASSWORD}])
def test_registry_credentials_go_together(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(registry="registry.lan:5443", **values)
    (error,) = caught.value.errors()
    assert error["msg"] == (
        "Value error, EXECUTOR_REGISTRY_USER and EXECUTOR_REGISTRY_PASSWORD go together: set "
        "both or neither"
    )
    assert PASSWORD not in str(caught.value)


def test_the_registry_password_is_a_secret() -> None:
    configured = settings(
        registry="registry.lan:5443", registry_user="executor", registry_password=PASSWORD
    )
    assert PASSWORD not in repr(configured) and PASSWORD not in str(configured)


def test_without_a_registry_images_stay_local() -> None:
    assert Registry.configured(settings().images) is None


def test_only_a_digest_reference_is_pulled() -> None:
    assert is_digest_reference("registry.lan:5443/plugin-executor/p-1@sha256:" + "a" * 64)
    assert not is_digest_reference("plugin-executor/p-1:v1")
