"""Programmatic QA of invoices: the IBAN must start with FR, the currency be EUR or USD.

On Submit: one issue per broken rule (on the submitted label), the asset sent back to the
labeling queue when a rule broke, and the labeling accuracy (share of rules passed) written
into the asset's ``jsonMetadata`` either way.
"""

from plugin_runtime import PluginCore

from .rules import accuracy, check_invoice


class PluginHandler(PluginCore):
    def on_submit(self, label: dict, asset_id: str) -> None:
        results = check_invoice(label.get("jsonResponse", {}))
        broken = [r for r in results if not r.passed]
        asset = f"assets/{asset_id}"
        for result in broken:
            self.logger.warning("asset %s: %s", asset_id, result.message)
            self.api.post(
                f"{asset}/issues", json={"text": result.message, "labelId": label.get("id")}
            )
        score = accuracy(results)
        self.api.patch(asset, json={"jsonMetadata": {"accuracy": score}})
        if broken:
            self.api.post(f"{asset}/send-back-to-queue")
            self.logger.info(
                "asset %s REJECTED: %d issue(s), accuracy %.2f, sent back to the queue",
                asset_id,
                len(broken),
                score,
            )
        else:
            self.logger.info("asset %s ACCEPTED: accuracy %.2f", asset_id, score)
