"""Says which setting to change when pip fails on the package index's certificate.

pip's own message ("CERTIFICATE_VERIFY_FAILED") does not know the executor: on a network
that inspects TLS, the fix is ``EXECUTOR_BUILD_CA_BUNDLE``, and the build log and the
version's error say so.
"""

from __future__ import annotations

from collections.abc import Callable

from executor.errors import BuildFailed

__all__ = ["CERTIFICATE_HINT", "CertificateWatch"]

# What pip (and urllib3 under it) print when the index's certificate is not trusted.
CERTIFICATE_ERRORS = ("CERTIFICATE_VERIFY_FAILED", "SSLCertVerificationError", "SSLError(")
CERTIFICATE_HINT = (
    "pip could not verify the package index's TLS certificate: set EXECUTOR_BUILD_CA_BUNDLE "
    "to the CA bundle (PEM) that signs it (a proxy that inspects TLS: its CA; unset, the "
    "system bundle is used when there is one)"
)
# Output arrives in chunks: a marker may straddle two of them.
_TAIL_CHARS = max(map(len, CERTIFICATE_ERRORS))


class CertificateWatch:
    """Passes a build's output on and notes whether pip reported a certificate error."""

    def __init__(self, on_output: Callable[[str], None]) -> None:
        self._on_output = on_output
        self._tail = ""
        self.seen = False

    def __call__(self, text: str) -> None:
        if not self.seen:
            window = self._tail + text
            self.seen = any(marker in window for marker in CERTIFICATE_ERRORS)
            self._tail = window[-_TAIL_CHARS:]
        self._on_output(text)

    def explained(self, failure: BuildFailed) -> BuildFailed:
        """``failure`` itself, or, after a certificate error, the same kind of failure
        whose message starts with what to do (also written to the build output)."""
        if not self.seen:
            return failure
        self._on_output(f"\n{CERTIFICATE_HINT}\n")
        # A BuildFailed, not the failure's own subclass: those take other arguments (the
        # engine's StepFailed carries its step container).
        return BuildFailed(f"{CERTIFICATE_HINT}; {failure.message}", **failure.details)
