"""Parallel labeling: group A labels job A, group B labels job B; once every labeler assigned
to the asset has submitted, their jobs are combined into one label for the reviewer.

The combination (which labeler each job came from, conflicts) is recorded in the asset's
``jsonMetadata.parallel``; the same labels are never combined twice.
"""

from plugin_runtime import PluginCore

from .combine import combine
from .labels import latest_by_assignee, missing


class PluginHandler(PluginCore):
    def on_submit(self, label: dict, asset_id: str) -> None:
        asset = self.api.get(f"assets/{asset_id}")
        assignees = asset["consensusAssignees"]
        if len(assignees) < 2:
            self.logger.info("asset %s has one labeler: nothing to combine", asset_id)
            return
        labels = self.api.get(f"assets/{asset_id}/labels", params={"labelType": "DEFAULT"})
        latest = latest_by_assignee(labels, assignees)
        waiting = missing(latest, assignees)
        if waiting:
            self.logger.info("asset %s: waiting for %s", asset_id, ", ".join(waiting))
            return
        sources = sorted(lab["id"] for lab in latest.values())
        if asset["jsonMetadata"].get("parallel", {}).get("labels") == sources:
            self.logger.info("asset %s: these labels were combined already", asset_id)
            return
        combined = combine(latest, assignees)
        for job, labelers in combined.conflicts.items():
            self.logger.warning(
                "asset %s: job %s answered differently by %s; kept %s's answer",
                asset_id,
                job,
                ", ".join(labelers),
                combined.sources[job],
            )
        created = self.api.post(
            f"assets/{asset_id}/labels",
            json={"jsonResponse": combined.json_response, "labelType": "DEFAULT"},
        )
        record = {"combinedLabelId": created["id"], "labels": sources, "jobs": combined.sources}
        self.api.patch(
            f"assets/{asset_id}", json={"status": "TO_REVIEW", "jsonMetadata": {"parallel": record}}
        )
        self.logger.info(
            "asset %s: combined %s into %s",
            asset_id,
            ", ".join(f"{job} from {who}" for job, who in sorted(combined.sources.items())),
            created["id"],
        )
