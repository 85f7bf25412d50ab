"""Programmatic QA of invoices (docs/architecture.md, the first use): IBAN must start with FR,
currency EUR or USD."""

from plugin_runtime import PluginCore

ALLOWED_CURRENCIES = {"EUR", "USD"}


def check_invoice(json_response: dict) -> list[str]:
    payment = json_response.get("PAYMENT_JOB", {})
    problems = []
    iban = payment.get("IBAN", {}).get("text", "")
    if not iban.startswith("FR"):
        problems.append(f"IBAN {iban!r} does not start with FR")
    currency = payment.get("CURRENCY", {}).get("text", "")
    if currency not in ALLOWED_CURRENCIES:
        problems.append(f"currency {currency!r} is not EUR or USD")
    return problems


class PluginHandler(PluginCore):
    def on_submit(self, label: dict, asset_id: str) -> None:
        problems = check_invoice(label.get("jsonResponse", {}))
        if problems:
            for problem in problems:
                self.logger.warning("asset %s: %s", asset_id, problem)
            self.logger.info("asset %s REJECTED (%d problems)", asset_id, len(problems))
        else:
            self.logger.info("asset %s ACCEPTED", asset_id)
        print(f"checked project {self.project_id}")
