"""Programmatic QA: on submit, a label whose currency is not allowed gets an issue.

The rule reads one field of the label (PAYMENT_JOB's CURRENCY transcription) and, when it
breaks, creates an issue on the label with self.kili.create_issues. Change FIELD_JOB,
FIELD and ALLOWED to your project's ontology.
"""

from typing import Any

from plugin_runtime import PluginCore

FIELD_JOB = "PAYMENT_JOB"
FIELD = "CURRENCY"
ALLOWED = ("EUR", "USD")


def broken_rule(label: dict[str, Any]) -> str | None:
    """What is wrong with the label, or None when it passes."""
    value = label.get("jsonResponse", {}).get(FIELD_JOB, {}).get(FIELD, {}).get("text")
    if value in ALLOWED:
        return None
    return f"{FIELD} is {value!r}: expected one of {', '.join(ALLOWED)}"


class PluginHandler(PluginCore):
    def on_submit(self, label: dict[str, Any], asset_id: str) -> None:
        problem = broken_rule(label)
        if problem is None:
            self.logger.info("asset %s ACCEPTED", asset_id)
            return
        self.logger.warning("asset %s: %s", asset_id, problem)
        if self.kili is None:
            self.logger.error("no issue created: self.kili is None (the minimal flavor)")
            return
        self.kili.create_issues(
            project_id=self.project_id, label_id_array=[label["id"]], text_array=[problem]
        )
