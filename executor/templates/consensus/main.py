"""Consensus check: a submitted label is compared with the other labelers' labels of the
same asset; when their classes differ, the asset goes back to the labeling queue.

Change JOB to your project's classification job.
"""

from typing import Any

from plugin_runtime import PluginCore

JOB = "CLASSIFICATION_JOB"
LABEL_FIELDS = ["id", "author.email", "jsonResponse"]


def classes(label: dict[str, Any]) -> list[str]:
    """The category names the label chose in JOB, sorted."""
    categories = label.get("jsonResponse", {}).get(JOB, {}).get("categories", [])
    return sorted(category["name"] for category in categories)


class PluginHandler(PluginCore):
    def on_submit(self, label: dict[str, Any], asset_id: str) -> None:
        if self.kili is None:
            self.logger.warning("consensus not checked: self.kili is None (the minimal flavor)")
            return
        others = [
            other
            for other in self.kili.labels(
                project_id=self.project_id,
                asset_id=asset_id,
                fields=LABEL_FIELDS,
                disable_tqdm=True,
            )
            if other["id"] != label["id"]
        ]
        mine = classes(label)
        disagreeing = [other for other in others if classes(other) != mine]
        if not disagreeing:
            self.logger.info("asset %s: %d other label(s) agree on %s", asset_id, len(others), mine)
            return
        who = ", ".join(other["author"]["email"] for other in disagreeing)
        self.logger.warning(
            "asset %s: %s disagree with %s: sent back to queue", asset_id, who, mine
        )
        self.kili.send_back_to_queue(asset_ids=[asset_id])
