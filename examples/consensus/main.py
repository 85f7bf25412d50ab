"""Consensus resolution: once every labeler of a consensus asset has submitted, merge their
boxes (IoU matching, majority vote on category) into one extra label for the reviewer.

Before that, each Submit only logs who is still missing. The merge is recorded in the
asset's ``jsonMetadata.consensus`` (the label ids it came from), so a repeated event does not
add a second merged label, while a labeler's resubmission produces a fresh one.
"""

from plugin_runtime import PluginCore

from .boxes import boxes_of, detection_jobs, merge, to_annotations
from .labels import latest_by_assignee, missing


class PluginHandler(PluginCore):
    def on_submit(self, label: dict, asset_id: str) -> None:
        asset = self.api.get(f"assets/{asset_id}")
        assignees = asset["consensusAssignees"]
        if len(assignees) < 2:
            self.logger.info("asset %s is not a consensus asset: nothing to merge", asset_id)
            return
        labels = self.api.get(f"assets/{asset_id}/labels", params={"labelType": "DEFAULT"})
        latest = latest_by_assignee(labels, assignees)
        waiting = missing(latest, assignees)
        if waiting:
            self.logger.info(
                "asset %s: %d/%d labelers submitted, waiting for %s",
                asset_id,
                len(latest),
                len(assignees),
                ", ".join(waiting),
            )
            return
        sources = sorted(lab["id"] for lab in latest.values())
        if asset["jsonMetadata"].get("consensus", {}).get("sources") == sources:
            self.logger.info("asset %s: these labels were merged already", asset_id)
            return
        self._merge(asset_id, latest, sources)

    def _merge(self, asset_id: str, latest: dict, sources: list) -> None:
        responses = {author: lab["jsonResponse"] for author, lab in latest.items()}
        merged_response = {}
        counts = {}
        for job in detection_jobs(list(responses.values())):
            boxes = merge({a: boxes_of(r, job) for a, r in responses.items()})
            merged_response[job] = {"annotations": to_annotations(boxes)}
            counts[job] = len(boxes)
        created = self.api.post(
            f"assets/{asset_id}/labels",
            json={"jsonResponse": merged_response, "labelType": "DEFAULT"},
        )
        consensus = {"mergedLabelId": created["id"], "sources": sources, "boxes": counts}
        self.api.patch(
            f"assets/{asset_id}",
            json={"status": "TO_REVIEW", "jsonMetadata": {"consensus": consensus}},
        )
        self.logger.info(
            "asset %s: merged %d labels into %s (%s), sent to review",
            asset_id,
            len(latest),
            created["id"],
            ", ".join(f"{job}: {n} boxes" for job, n in counts.items()),
        )
