"""The invoice rules, pure functions (no platform calls): easy to test and to extend.

A label's ``jsonResponse`` has a transcription job ``IBAN`` (``{"text": ...}``) and a
classification job ``CURRENCY`` (``{"categories": [{"name": ...}]}``), as in Kili.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALLOWED_CURRENCIES = ("EUR", "USD")
IBAN_PREFIX = "FR"


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    message: str


def _iban(json_response: dict[str, Any]) -> str:
    return str(json_response.get("IBAN", {}).get("text", "")).replace(" ", "").upper()


def _currency(json_response: dict[str, Any]) -> str | None:
    categories = json_response.get("CURRENCY", {}).get("categories") or []
    return categories[0].get("name") if categories else None


def check_iban(json_response: dict[str, Any]) -> RuleResult:
    iban = _iban(json_response)
    if not iban:
        return RuleResult("iban_fr", False, "IBAN is missing: transcribe the payment IBAN")
    if not iban.startswith(IBAN_PREFIX):
        return RuleResult("iban_fr", False, f"IBAN {iban[:4]}... does not start with {IBAN_PREFIX}")
    return RuleResult("iban_fr", True, "IBAN starts with FR")


def check_currency(json_response: dict[str, Any]) -> RuleResult:
    currency = _currency(json_response)
    if currency in ALLOWED_CURRENCIES:
        return RuleResult("currency", True, f"currency {currency} is allowed")
    shown = currency or "missing"
    allowed = " or ".join(ALLOWED_CURRENCIES)
    return RuleResult("currency", False, f"currency {shown} is not {allowed}")


RULES = (check_iban, check_currency)


def check_invoice(json_response: dict[str, Any]) -> list[RuleResult]:
    """Every rule's result, in rule order."""
    return [rule(json_response) for rule in RULES]


def accuracy(results: list[RuleResult]) -> float:
    """The share of rules passed, between 0 and 1 (rounded to 4 digits)."""
    if not results:
        return 1.0
    return round(sum(r.passed for r in results) / len(results), 4)
