"""Settings in groups: each variable lands in its group from the environment or a keyword,
every group's wrong values are told at once, each naming its variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from executor.cli.config import setting_errors
from executor.settings import GROUPS, BuildSettings, RunSettings, Settings, variables


def test_a_variable_of_each_kind_lands_in_its_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR_BUILD_TIMEOUT_S", "42")  # the group's prefix
    monkeypatch.setenv("EXECUTOR_MAX_CONCURRENT_BUILDS", "7")  # a name of its own
    monkeypatch.setenv("EXECUTOR_PLACEMENT_GRACE_S", "0")
    monkeypatch.setenv("EXECUTOR_LEASE_S", "9")  # a group of unprefixed variables
    monkeypatch.setenv("EXECUTOR_NODE_RUNTIMES", "runc, runsc")  # read as written
    monkeypatch.setenv("EXECUTOR_PLATFORM_PROJECTS", '{"p1": {"url": "http://a.lan/"}}')
    settings = Settings()
    assert (settings.build.timeout_s, settings.build.max_concurrent) == (42.0, 7)
    assert settings.warm_pool.placement_grace_s == 0.0
    assert settings.runs.lease_s == 9.0
    assert settings.nodes.runtimes == ["runc", "runsc"]
    assert settings.platform.projects["p1"].url == "http://a.lan/"
    # A keyword wins over the environment, for that variable only.
    assert Settings(build_timeout_s=5).build == settings.build.model_copy(update={"timeout_s": 5})


def test_every_variable_is_read_by_one_field_and_keeps_its_name() -> None:
    names = variables()
    assert len(names) == len(set(names))
    assert all(name.startswith("EXECUTOR_") and name.isupper() for name in names)
    assert {"EXECUTOR_REGISTRY", "EXECUTOR_CLOCK_SKEW_WARN_S", "EXECUTOR_PORT"} <= set(names)
    # A group's name is no variable's keyword (Settings(registry=...) is the variable).
    keywords = {name.removeprefix("EXECUTOR_").lower() for name in names}
    assert not keywords & {group.name for group in GROUPS}


def test_wrong_values_in_several_groups_are_all_told_naming_their_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXECUTOR_PORT", "eighty")
    monkeypatch.setenv("EXECUTOR_MAX_CONCURRENT_BUILDS", "0")
    monkeypatch.setenv("EXECUTOR_WEBHOOK_TENANT_SHARE", "2")
    monkeypatch.setenv("EXECUTOR_UPLOAD_CHECK_PER_TENANT", "3")
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert setting_errors(raised.value) == [
        "EXECUTOR_PORT='eighty': Input should be a valid integer, unable to parse string as an "
        "integer (Port the API listens on.)",
        "EXECUTOR_MAX_CONCURRENT_BUILDS='0': Input should be greater than or equal to 1 "
        "(Builds running at once.)",
        "settings: EXECUTOR_UPLOAD_CHECK_PER_TENANT=3 is above EXECUTOR_UPLOAD_CHECK_WORKERS=2: "
        "a tenant's share is part of the pool; lower it or add workers",
        "EXECUTOR_WEBHOOK_TENANT_SHARE='2': Input should be less than or equal to 1 (Share of "
        "the webhook pool one tenant's deliveries may hold at once (at least one delivery), so "
        "one tenant's slow receivers leave the rest to others.)",
    ]


def test_with_values_checks_the_changed_value_and_keeps_the_rest(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, retry_base_s=0.5)
    changed = settings.with_values(dispatch=False, gateway_socket_dir=tmp_path / "g")
    assert changed.runs == settings.runs.model_copy(update={"dispatch": False})
    assert changed.resolved_gateway_socket_dir == (tmp_path / "g").resolve()
    assert (changed.data_dir, changed.sandbox) == (tmp_path, settings.sandbox)
    with pytest.raises(ValidationError) as raised:
        settings.with_values(build_timeout_s=-1)
    assert setting_errors(raised.value) == [
        "EXECUTOR_BUILD_TIMEOUT_S=-1: Input should be greater than 0 (Wall time of one build; "
        "past it the build is stopped, FAILED.)"
    ]


def test_a_group_and_its_variables_keywords_are_not_given_together() -> None:
    with pytest.raises(TypeError, match="give build= or its variables' keywords, not both"):
        Settings(build=BuildSettings(), build_timeout_s=5)


def test_a_group_s_name_is_no_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each group reads its own variables; EXECUTOR_RUNS is none of them (nor JSON for all).
    monkeypatch.setenv("EXECUTOR_RUNS", "not json")
    monkeypatch.setenv("EXECUTOR_SANDBOX", '{"memory_mib": 16}')
    settings = Settings()
    assert settings.runs == RunSettings()
    assert settings.sandbox.memory_mib == 512


def test_a_negative_distribution_timeout_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXECUTOR_REGISTRY_DISTRIBUTE_TIMEOUT_S", "-1")
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert setting_errors(raised.value) == [
        "EXECUTOR_REGISTRY_DISTRIBUTE_TIMEOUT_S='-1': Input should be greater than or equal to "
        "0 (After a push, how long a build waits for every live node to pull the image before "
        "the version becomes ACTIVE (0: no wait); a node that did not pulls it at its first "
        "run.)"
    ]
    monkeypatch.setenv("EXECUTOR_REGISTRY_DISTRIBUTE_TIMEOUT_S", "0")
    assert Settings().images.registry_distribute_timeout_s == 0.0
