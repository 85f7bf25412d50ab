"""Which CA bundle builds trust by default, and what a certificate failure says."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.build.tls import CERTIFICATE_HINT, CertificateWatch
from executor.errors import BuildFailed
from executor.settings import Settings, checks

PIP_ERROR = (
    "WARNING: Retrying (Retry(total=0)) after connection broken by 'SSLError(SSLCertVerification"
    "Error(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
    "certificate (_ssl.c:1006)'))': /simple/six/\n"
)


@pytest.fixture
def system_bundles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The usual places, moved under tmp_path; none exists until a test writes one."""
    places = [tmp_path / "debian.crt", tmp_path / "rhel.crt"]
    monkeypatch.setattr(checks, "SYSTEM_CA_BUNDLES", tuple(places))
    monkeypatch.delenv("EXECUTOR_BUILD_CA_BUNDLE", raising=False)
    return places


def test_the_system_bundle_is_the_default_when_there_is_one(system_bundles: list[Path]) -> None:
    assert Settings(operator_key="k").build.ca_bundle is None
    system_bundles[1].write_text("PEM")
    assert Settings(operator_key="k").build.ca_bundle == system_bundles[1]
    system_bundles[0].write_text("PEM")
    assert Settings(operator_key="k").build.ca_bundle == system_bundles[0]


@pytest.mark.parametrize("value", ["", "none", "None", " NONE "])
def test_empty_or_none_opts_out_of_the_system_bundle(
    value: str, system_bundles: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    system_bundles[0].write_text("PEM")
    monkeypatch.setenv("EXECUTOR_BUILD_CA_BUNDLE", value)
    assert Settings(operator_key="k").build.ca_bundle is None


def test_an_explicit_bundle_wins(
    system_bundles: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_bundles[0].write_text("PEM")
    monkeypatch.setenv("EXECUTOR_BUILD_CA_BUNDLE", str(tmp_path / "corp.pem"))
    assert Settings(operator_key="k").build.ca_bundle == tmp_path / "corp.pem"


def test_a_certificate_error_in_the_output_names_the_setting() -> None:
    seen: list[str] = []
    watch = CertificateWatch(seen.append)
    # The marker arrives cut across two chunks of output.
    cut = PIP_ERROR.index("VERIFY")
    watch(PIP_ERROR[:cut])
    watch(PIP_ERROR[cut:])
    failure = watch.explained(BuildFailed("The command '/bin/sh -c ...' returned a non-zero code"))
    assert isinstance(failure, BuildFailed)
    assert failure.message == (
        f"{CERTIFICATE_HINT}; The command '/bin/sh -c ...' returned a non-zero code"
    )
    assert "EXECUTOR_BUILD_CA_BUNDLE" in failure.message
    assert seen == [PIP_ERROR[:cut], PIP_ERROR[cut:], f"\n{CERTIFICATE_HINT}\n"]


def test_other_failures_are_left_as_they_are() -> None:
    seen: list[str] = []
    watch = CertificateWatch(seen.append)
    watch("ERROR: No matching distribution found for six==9.9\n")
    original = BuildFailed("pip failed")
    assert watch.explained(original) is original
    assert seen == ["ERROR: No matching distribution found for six==9.9\n"]
