"""The QA bot demo (README's first command, via deploy/run.sh): against a running reference
platform and executor where ``qa_bot`` is active on the project, submit one valid and one
invalid invoice label, then print the issues, each asset's status and metadata, and the
plugin's logs of both runs.

    python -m examples.demo --platform URL --platform-key-file FILE

The platform admin key is read from FILE; the executor's URL and key come from the same
settings as the CLI's (``EXECUTOR_URL``, ``EXECUTOR_API_KEY`` or the operator key file), so
no key appears on a command line.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from executor.settings import Settings

PROJECT = "demo-invoices"
JOBS: dict[str, Any] = {
    "IBAN": {"mlTask": "TRANSCRIPTION"},
    "CURRENCY": {
        "mlTask": "CLASSIFICATION",
        "content": {"categories": {c: {"name": c} for c in ("EUR", "USD", "GBP", "CHF")}},
    },
}
INVOICES = {
    "valid": {
        "IBAN": {"text": "FR76 3000 6000 0112 3456 7890 189"},
        "CURRENCY": {"categories": [{"name": "EUR"}]},
    },
    "invalid": {
        "IBAN": {"text": "DE89 3704 0044 0532 0130 00"},
        "CURRENCY": {"categories": [{"name": "GBP"}]},
    },
}
TERMINAL = {"succeeded", "failed", "timed_out", "oom_killed", "crashed", "canceled"}
WAIT_S = 180


def check(response: httpx.Response, *ok: int) -> Any:
    if response.status_code not in ok:
        sys.exit(
            f"{response.request.method} {response.request.url} -> {response.status_code}: "
            f"{response.text}"
        )
    return response.json()


def wait(what: str, poll: Any) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        result = poll()
        if result is not None:
            return result
        time.sleep(0.3)
    sys.exit(f"gave up waiting for {what} after {WAIT_S} s")


def setup(platform: httpx.Client) -> httpx.Client:
    """The project (once) and a fresh labeler; returns the labeler's client."""
    body = {"id": PROJECT, "title": "Demo invoices", "jsonInterface": {"jobs": JOBS}}
    check(platform.post("/api/v1/projects", json=body), 201, 409)
    email = f"labeler-{secrets.token_hex(3)}@demo.example"
    user = check(platform.post("/api/v1/users", json={"email": email}), 201)
    return httpx.Client(
        base_url=platform.base_url, headers={"X-API-Key": user["apiKey"]}, timeout=30
    )


def submit(platform: httpx.Client, labeler: httpx.Client, name: str) -> tuple[str, str]:
    """Create an asset, submit its label; returns (asset id, event id)."""
    asset = check(
        platform.post(
            f"/api/v1/projects/{PROJECT}/assets",
            json={
                "externalId": f"invoice-{name}-{secrets.token_hex(2)}",
                "jsonMetadata": {"source": "demo"},
            },
        ),
        201,
    )
    label = check(
        labeler.post(
            f"/api/v1/projects/{PROJECT}/assets/{asset['id']}/labels",
            json={"jsonResponse": INVOICES[name]},
        ),
        201,
    )
    print(f"  submitted the {name} invoice label on asset {asset['id']}:")
    print(f"    {json.dumps(INVOICES[name])}")
    return asset["id"], label["eventId"]


def run_of(platform: httpx.Client, executor: httpx.Client, event_id: str) -> dict[str, Any]:
    def delivered() -> Any:
        event = check(platform.get(f"/api/v1/projects/{PROJECT}/events/{event_id}"), 200)
        if event["status"] == "failed":
            sys.exit(f"the executor refused the event: {event['lastError']}")
        return event if event["status"] == "delivered" else None

    event = wait("the platform to deliver the event", delivered)
    if not event["invocations"]:
        sys.exit(f"no plugin is active on {PROJECT}: activate qa_bot first")

    def finished() -> Any:
        run = check(executor.get(f"/v1/invocations/{event['invocations'][0]}"), 200)
        return run if run["status"] in TERMINAL else None

    return dict(wait("the plugin run", finished))


def report(
    platform: httpx.Client, executor: httpx.Client, name: str, asset_id: str, run: dict[str, Any]
) -> None:
    asset = check(platform.get(f"/api/v1/projects/{PROJECT}/assets/{asset_id}"), 200)
    issues = check(platform.get(f"/api/v1/projects/{PROJECT}/assets/{asset_id}/issues"), 200)
    print(f"\n== {name} invoice (asset {asset_id}): run {run['id']} {run['status']}")
    print(f"  status:   {asset['status']}")
    print(f"  metadata: {json.dumps(asset['jsonMetadata'])}")
    print(f"  issues:   {len(issues)}")
    for issue in issues:
        print(f"    - [{issue['status']}] {issue['text']} (by {issue['author']})")
    calls = run.get("gateway_calls", [])
    print(f"  platform calls through the gateway: {len(calls)}")
    for call in calls:
        print(f"    {call['method']} {call['path']} -> {call['status']} ({call['duration_ms']} ms)")
    logs = check(executor.get("/v1/logs", params={"run_id": run["id"], "limit": 100}), 200)
    print("  plugin logs:")
    for record in logs:
        print(f"    {record['created_at']} {record['log_type']:<7} {record['content']}")


def executor_key(settings: Settings) -> str:
    """The key the CLI would use: EXECUTOR_API_KEY, EXECUTOR_OPERATOR_KEY or the key file."""
    for secret in (settings.api_key, settings.operator_key):
        if secret is not None:
            return secret.get_secret_value()
    if not settings.operator_key_file.exists():
        sys.exit("no executor API key: set EXECUTOR_API_KEY or run where var/operator_key is")
    return settings.operator_key_file.read_text().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", required=True)
    parser.add_argument("--platform-key-file", required=True, type=Path)
    args = parser.parse_args()
    platform_key = args.platform_key_file.read_text().strip()
    platform = httpx.Client(base_url=args.platform, headers={"X-API-Key": platform_key}, timeout=30)
    settings = Settings()
    executor = httpx.Client(
        base_url=settings.url,
        headers={"Authorization": f"Bearer {executor_key(settings)}"},
        timeout=30,
    )
    labeler = setup(platform)
    submitted = {name: submit(platform, labeler, name) for name in INVOICES}
    for name, (asset_id, event_id) in submitted.items():
        report(platform, executor, name, asset_id, run_of(platform, executor, event_id))


if __name__ == "__main__":
    main()
