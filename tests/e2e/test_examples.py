"""The three use cases end to end: the reference labeling platform posts events to a real
executor, which runs the example plugins in containers; the plugins act on the platform
through the gateway with the platform's service credential.

One platform and one executor for the module; each test uses its own assets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLES, OPERATOR_KEY, REPO, RunningServer, ServerFactory, free_port
from tests.labeling_platform import ADMIN_KEY, SERVICE_KEY, RunningPlatform, start_platform

PLUGIN_AUTHOR = "executor-plugins"  # who the platform sees acting for plugins

INVOICE_JOBS: dict[str, Any] = {
    "IBAN": {"mlTask": "TRANSCRIPTION"},
    "CURRENCY": {
        "mlTask": "CLASSIFICATION",
        "content": {"categories": {c: {"name": c} for c in ("EUR", "USD", "GBP", "CHF")}},
    },
}
DETECTION_JOBS: dict[str, Any] = {
    "OBJECTS": {
        "mlTask": "OBJECT_DETECTION",
        "content": {"categories": {c: {"name": c} for c in ("CAR", "TRUCK", "BIKE")}},
    }
}
PARALLEL_JOBS: dict[str, Any] = {
    "JOB_A": {
        "mlTask": "CLASSIFICATION",
        "content": {"categories": {c: {"name": c} for c in ("INVOICE", "RECEIPT")}},
    },
    "JOB_B": {"mlTask": "TRANSCRIPTION"},
}


@dataclass
class World:
    server: RunningServer
    platform: RunningPlatform
    users: dict[str, httpx.Client]

    def submit_and_run(
        self, user: str, project: str, asset_id: str, json_response: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Submit a label as ``user``; wait for the one plugin run it causes to end."""
        label = self.platform.submit(self.users[user], project, asset_id, json_response)
        event = self.platform.wait_delivered(project, label["eventId"])
        assert event["status"] == "delivered", event
        assert len(event["invocations"]) == 1, event
        run = self.server.wait_run(event["invocations"][0])
        assert run["status"] == "succeeded", (dict(run), self.log_lines(run["id"]))
        return label, run

    def log_lines(self, run_id: str) -> list[str]:
        return [f"{r['log_type']} {r['content']}" for r in self.server.logs(run_id=run_id)]


@pytest.fixture(scope="module")
def world(
    server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    platform_port = free_port()
    server: RunningServer = server_factory(
        platform_api_url=f"http://127.0.0.1:{platform_port}/api/v1/projects/{{project_id}}",
        platform_credential=SERVICE_KEY,
    )
    with start_platform(
        tmp_path_factory.mktemp("platform"), server.url, OPERATOR_KEY, port=platform_port
    ) as platform:
        for plugin, project, jobs in (
            ("qa_bot", "invoices", INVOICE_JOBS),
            ("consensus", "detection", DETECTION_JOBS),
            ("parallel_labeling", "parallel", PARALLEL_JOBS),
        ):
            server.push(EXAMPLES / plugin)
            server.activate(plugin, project)
            platform.project(project, jobs)
        users = {
            name: platform.user(f"{name}@example.com")
            for name in ("lea", "ann", "ben", "cid", "gina", "hugo")
        }
        yield World(server, platform, users)


def invoice(iban: str, currency: str) -> dict[str, Any]:
    return {"IBAN": {"text": iban}, "CURRENCY": {"categories": [{"name": currency}]}}


def test_qa_bot_rejects_an_invalid_invoice(world: World) -> None:
    platform = world.platform
    asset = platform.asset("invoices", "invoice-bad", jsonMetadata={"supplier": "ACME"})
    label, run = world.submit_and_run(
        "lea", "invoices", asset["id"], invoice("DE89 3704 0044 0532", "GBP")
    )

    issues = platform.issues("invoices", asset["id"])
    assert [(i["text"], i["labelId"], i["author"], i["status"]) for i in issues] == [
        ("IBAN DE89... does not start with FR", label["id"], PLUGIN_AUTHOR, "OPEN"),
        ("currency GBP is not EUR or USD", label["id"], PLUGIN_AUTHOR, "OPEN"),
    ]
    after = platform.get_asset("invoices", asset["id"])
    assert after["status"] == "TODO"  # back in the labeling queue
    assert after["jsonMetadata"] == {"supplier": "ACME", "accuracy": 0.0}
    assert [lab["id"] for lab in platform.labels("invoices", asset["id"])] == [label["id"]]

    calls = [
        (c["method"], c["path"].split("/assets/")[-1], c["status"]) for c in run["gateway_calls"]
    ]
    aid = asset["id"]
    assert calls == [
        ("POST", f"{aid}/issues", 201),
        ("POST", f"{aid}/issues", 201),
        ("PATCH", aid, 200),
        ("POST", f"{aid}/send-back-to-queue", 200),
    ]
    lines = world.log_lines(run["id"])
    assert f"WARNING asset {aid}: IBAN DE89... does not start with FR" in lines
    assert f"WARNING asset {aid}: currency GBP is not EUR or USD" in lines
    assert any(line.startswith(f"INFO asset {aid} REJECTED: 2 issue(s)") for line in lines)
    assert not any(SERVICE_KEY in line for line in lines)


def test_qa_bot_leaves_a_valid_invoice_but_for_its_accuracy(world: World) -> None:
    platform = world.platform
    asset = platform.asset("invoices", "invoice-good", jsonMetadata={"supplier": "ACME"})
    label = platform.submit(
        world.users["lea"], "invoices", asset["id"], invoice("FR76 3000", "EUR")
    )
    before = platform.get_asset("invoices", asset["id"])
    event = platform.wait_delivered("invoices", label["eventId"])
    run = world.server.wait_run(event["invocations"][0])
    assert run["status"] == "succeeded", world.log_lines(run["id"])

    after = platform.get_asset("invoices", asset["id"])
    assert platform.issues("invoices", asset["id"]) == []
    assert after["status"] == "LABELED"
    assert after["jsonMetadata"] == {"supplier": "ACME", "accuracy": 1.0}
    unchanged = ("jsonMetadata", "updatedAt")
    assert {k: v for k, v in after.items() if k not in unchanged} == {
        k: v for k, v in before.items() if k not in unchanged
    }
    assert [c["method"] for c in run["gateway_calls"]] == ["PATCH"]
    assert f"INFO asset {asset['id']} ACCEPTED: accuracy 1.00" in world.log_lines(run["id"])


def test_qa_bot_one_broken_rule_gives_half_accuracy(world: World) -> None:
    platform = world.platform
    asset = platform.asset("invoices", "invoice-chf")
    world.submit_and_run("lea", "invoices", asset["id"], invoice("FR76 1111", "CHF"))
    assert [i["text"] for i in platform.issues("invoices", asset["id"])] == [
        "currency CHF is not EUR or USD"
    ]
    after = platform.get_asset("invoices", asset["id"])
    assert (after["status"], after["jsonMetadata"]) == ("TODO", {"accuracy": 0.5})


def boxes_label(*boxes: tuple[str, float, float, float, float]) -> dict[str, Any]:
    annotations = []
    for index, (category, x0, y0, x1, y1) in enumerate(boxes):
        vertices = [{"x": x0, "y": y0}, {"x": x1, "y": y0}, {"x": x1, "y": y1}, {"x": x0, "y": y1}]
        annotations.append(
            {
                "categories": [{"name": category}],
                "type": "rectangle",
                "mid": f"m{index}",
                "boundingPoly": [{"normalizedVertices": vertices}],
            }
        )
    return {"OBJECTS": {"annotations": annotations}}


def test_consensus_merges_once_every_labeler_submitted(world: World) -> None:
    platform = world.platform
    assignees = ["ann@example.com", "ben@example.com", "cid@example.com"]
    asset = platform.asset("detection", "street-1", consensusAssignees=assignees)
    aid = asset["id"]
    submissions = {
        "ann": boxes_label(("CAR", 0.10, 0.10, 0.30, 0.30), ("BIKE", 0.60, 0.60, 0.70, 0.70)),
        "ben": boxes_label(("CAR", 0.12, 0.10, 0.32, 0.30)),
        "cid": boxes_label(("TRUCK", 0.11, 0.10, 0.31, 0.30), ("BIKE", 0.61, 0.60, 0.71, 0.70)),
    }
    labels = []
    for count, (user, response) in enumerate(submissions.items(), start=1):
        label, run = world.submit_and_run(user, "detection", aid, response)
        labels.append(label)
        if count < 3:  # not before every labeler submitted
            assert len(platform.labels("detection", aid)) == count
            assert platform.get_asset("detection", aid)["status"] == "ONGOING"
            waiting = ", ".join(assignees[count:])
            assert f"INFO asset {aid}: {count}/3 labelers submitted, waiting for {waiting}" in (
                world.log_lines(run["id"])
            )

    all_labels = platform.labels("detection", aid)
    assert len(all_labels) == 4
    merged = all_labels[-1]
    assert merged["author"]["email"] == PLUGIN_AUTHOR
    annotations = merged["jsonResponse"]["OBJECTS"]["annotations"]
    # The car all three drew (2 votes CAR, 1 TRUCK) and the bike two of three drew.
    found = [
        (
            a["categories"][0]["name"],
            [
                (round(v["x"], 3), round(v["y"], 3))
                for v in a["boundingPoly"][0]["normalizedVertices"]
            ][0::2],
        )
        for a in annotations
    ]
    assert found == [
        ("CAR", [(0.11, 0.1), (0.31, 0.3)]),
        ("BIKE", [(0.605, 0.6), (0.705, 0.7)]),
    ]
    after = platform.get_asset("detection", aid)
    assert after["status"] == "TO_REVIEW"
    assert after["jsonMetadata"]["consensus"] == {
        "mergedLabelId": merged["id"],
        "sources": sorted(lab["id"] for lab in labels),
        "boxes": {"OBJECTS": 2},
    }
    queue = platform.admin.get("/api/v1/projects/detection/review-queue").json()
    assert aid in [a["id"] for a in queue]


def test_parallel_labeling_combines_both_jobs(world: World) -> None:
    platform = world.platform
    asset = platform.asset(
        "parallel", "doc-1", consensusAssignees=["gina@example.com", "hugo@example.com"]
    )
    aid = asset["id"]
    job_a = {"JOB_A": {"categories": [{"name": "RECEIPT"}]}}
    job_b = {"JOB_B": {"text": "Total 42.00"}}
    first, run = world.submit_and_run("gina", "parallel", aid, job_a)
    assert len(platform.labels("parallel", aid)) == 1
    assert f"INFO asset {aid}: waiting for hugo@example.com" in world.log_lines(run["id"])
    second, _ = world.submit_and_run("hugo", "parallel", aid, job_b)

    labels = platform.labels("parallel", aid)
    assert len(labels) == 3
    combined = labels[-1]
    assert combined["author"]["email"] == PLUGIN_AUTHOR
    assert combined["jsonResponse"] == {**job_a, **job_b}
    after = platform.get_asset("parallel", aid)
    assert after["status"] == "TO_REVIEW"
    assert after["jsonMetadata"]["parallel"] == {
        "combinedLabelId": combined["id"],
        "labels": sorted([first["id"], second["id"]]),
        "jobs": {"JOB_A": "gina@example.com", "JOB_B": "hugo@example.com"},
    }


def test_demo_script_prints_issues_status_metadata_and_logs(world: World, tmp_path: Path) -> None:
    """What deploy/run.sh runs after starting both servers (README's first command)."""
    world.server.activate("qa_bot", "demo-invoices")
    key_file = tmp_path / "admin_key"
    key_file.write_text(ADMIN_KEY + "\n")
    env = {**os.environ, "EXECUTOR_URL": world.server.url, "EXECUTOR_API_KEY": OPERATOR_KEY}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.demo",
            "--platform",
            world.platform.url,
            "--platform-key-file",
            str(key_file),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    valid, invalid = out.split("== valid invoice")[1].split("== invalid invoice")
    assert "succeeded" in valid.splitlines()[0]
    assert "status:   LABELED" in valid
    assert 'metadata: {"source": "demo", "accuracy": 1.0}' in valid
    assert "issues:   0" in valid
    assert "ACCEPTED: accuracy 1.00" in valid
    assert "status:   TODO" in invalid
    assert 'metadata: {"source": "demo", "accuracy": 0.0}' in invalid
    assert "- [OPEN] IBAN DE89... does not start with FR (by executor-plugins)" in invalid
    assert "- [OPEN] currency GBP is not EUR or USD (by executor-plugins)" in invalid
    assert "WARNING asset" in invalid
    assert "REJECTED: 2 issue(s), accuracy 0.00, sent back to the queue" in invalid
    assert OPERATOR_KEY not in out and ADMIN_KEY not in out and SERVICE_KEY not in out
