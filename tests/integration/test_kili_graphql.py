"""The reference platform's Kili GraphQL endpoint, spoken to as the Kili SDK does (the
queries below are the SDK's own, kili 26.2.4), on loopback with the service key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.labeling_platform import SERVICE_KEY, RunningPlatform, start_platform

CREATE_ISSUES = (
    "mutation createIssues($issues: [IssueToCreate!]!, $where: AssetWhere!) {\n"
    "  data: createIssues(issues: $issues, where: $where) {\n    id\n  }\n}"
)
LABELS = (
    "query labels($where: LabelWhere!, $first: PageSize!, $skip: Int!) {\n"
    "  data: labels(where: $where, first: $first, skip: $skip) {\n"
    "    author {\n      email\n    }\n    id\n    jsonResponse\n    jsonResponseUrl\n  }\n}"
)
COUNT_LABELS = "query countLabels($where: LabelWhere!) {\n  data: countLabels(where: $where)\n}"
BACK_TO_QUEUE = (
    "mutation ($where: AssetWhere!) {\n  data: sendAssetsBackToQueue(where: $where) {\n"
    "    succeeded {\n      assetId\n      externalId\n    }\n  }\n}"
)
UPDATE_PROPERTIES = (
    "mutation ($whereArray: [AssetWhere!]!, $dataArray: [AssetData!]!) {\n"
    "  data: updatePropertiesInAssets(where: $whereArray, data: $dataArray) {\n    id\n  }\n}"
)
JOBS = {"CLASSIFICATION_JOB": {"mlTask": "CLASSIFICATION", "content": {"categories": {"CAT": {}}}}}
CAT = {"CLASSIFICATION_JOB": {"categories": [{"name": "CAT"}]}}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    with start_platform(tmp_path_factory.mktemp("platform"), None) as running:
        running.project("p1", JOBS)
        running.project("p2", JOBS)
        yield running


@pytest.fixture(scope="module")
def sdk(platform: RunningPlatform) -> httpx.Client:
    """What reaches the platform from the SDK through the gateway: the service key."""
    return platform.client(SERVICE_KEY)


def graphql(client: httpx.Client, project: str, query: str, **variables: Any) -> Any:
    response = client.post(
        f"/api/v1/projects/{project}/graphql", json={"query": query, "variables": variables}
    )
    assert response.status_code == 200, response.text
    return response.json()


def error(answer: Any) -> tuple[str, str]:
    (only,) = answer["errors"]
    assert answer["data"] is None
    return only["extensions"]["code"], only["message"]


def labelled_asset(platform: RunningPlatform, project: str, email: str) -> tuple[str, str]:
    asset = platform.asset(project, f"ext-{email}")
    label = platform.submit(platform.user(email), project, asset["id"], CAT)
    return asset["id"], label["id"]


def test_labels_and_issues_as_the_sdk_asks(platform: RunningPlatform, sdk: httpx.Client) -> None:
    asset, label = labelled_asset(platform, "p1", "ann@example.com")
    where = {"asset": {"id": asset, "project": {"id": "p1"}}, "project": {"id": "p1"}}
    assert graphql(sdk, "p1", COUNT_LABELS, where=where) == {"data": {"data": 1}}
    (found,) = graphql(sdk, "p1", LABELS, where=where, first=100, skip=0)["data"]["data"]
    assert (found["id"], found["author"]["email"]) == (label, "ann@example.com")
    assert json.loads(found["jsonResponse"]) == CAT  # a JSON string, as Kili's API sends it

    issues = [{"labelID": label, "text": "wrong class", "type": "ISSUE", "objectMid": None}]
    created = graphql(sdk, "p1", CREATE_ISSUES, issues=issues, where={"project": {"id": "p1"}})
    (issue,) = platform.issues("p1", asset)
    assert created == {"data": {"data": [{"id": issue["id"]}]}}
    assert (issue["labelId"], issue["text"], issue["author"]) == (
        label,
        "wrong class",
        "executor-plugins",
    )


def test_assets_go_back_to_queue_and_get_their_metadata(
    platform: RunningPlatform, sdk: httpx.Client
) -> None:
    asset, _ = labelled_asset(platform, "p1", "bea@example.com")
    assert platform.get_asset("p1", asset)["status"] == "LABELED"
    answer = graphql(sdk, "p1", BACK_TO_QUEUE, where={"idIn": [asset, "ast_unknown"]})
    assert answer["data"]["data"] == {
        "succeeded": [{"assetId": asset, "externalId": "ext-bea@example.com"}],
        "declined": [{"assetId": "ast_unknown", "externalId": None}],
        "failed": [],
    }
    assert platform.get_asset("p1", asset)["status"] == "TODO"
    data = [{"jsonMetadata": json.dumps({"accuracy": 0.5})}]
    answer = graphql(sdk, "p1", UPDATE_PROPERTIES, whereArray=[{"id": asset}], dataArray=data)
    assert answer == {"data": {"data": [{"id": asset}]}}
    assert platform.get_asset("p1", asset)["jsonMetadata"] == {"accuracy": 0.5}


def test_an_endpoint_serves_its_own_project_only(
    platform: RunningPlatform, sdk: httpx.Client
) -> None:
    asset, label = labelled_asset(platform, "p2", "cy@example.com")
    issues = [{"labelID": label, "text": "x", "type": "ISSUE"}]
    # p1's endpoint: p2's label, asset and project are not there, and nothing changes.
    assert error(graphql(sdk, "p1", CREATE_ISSUES, issues=issues, where={})) == (
        "NOT_FOUND",
        f"no label {label!r} in project 'p1'",
    )
    where = {"project": {"id": "p2"}}
    assert error(graphql(sdk, "p1", CREATE_ISSUES, issues=issues, where=where)) == (
        "FORBIDDEN",
        "this endpoint serves project 'p1', not 'p2'",
    )
    declined = graphql(sdk, "p1", BACK_TO_QUEUE, where={"idIn": [asset]})["data"]["data"]
    assert declined["succeeded"] == [] and declined["declined"][0]["assetId"] == asset
    assert graphql(sdk, "p1", COUNT_LABELS, where={"asset": {"id": asset}}) == {"data": {"data": 0}}
    assert platform.issues("p2", asset) == []
    assert platform.get_asset("p2", asset)["status"] == "LABELED"


def test_refusals_are_graphql_errors(platform: RunningPlatform, sdk: httpx.Client) -> None:
    asset, label = labelled_asset(platform, "p1", "dee@example.com")
    labeler = platform.user("eve@example.com")
    issues = [{"labelID": label, "text": "x", "type": "ISSUE"}]
    assert error(graphql(labeler, "p1", CREATE_ISSUES, issues=issues, where={})) == (
        "FORBIDDEN",
        "this needs one of the roles ['ADMIN', 'SERVICE']; you are LABELER",
    )
    code, message = error(graphql(sdk, "p1", "query { data: deleteProjects { id } }"))
    assert code == "NOT_SUPPORTED"
    assert message.startswith("operation deleteProjects is not one the reference platform plays")
    data = [{"status": "TODO"}]
    assert error(
        graphql(sdk, "p1", UPDATE_PROPERTIES, whereArray=[{"id": asset}], dataArray=data)
    ) == (
        "NOT_SUPPORTED",
        "the reference platform updates jsonMetadata only, not ['status']",
    )
    assert error(graphql(sdk, "nope", COUNT_LABELS, where={})) == (
        "NOT_FOUND",
        "no project 'nope' here: check the id",
    )
    assert platform.issues("p1", asset) == []
    assert platform.get_asset("p1", asset)["status"] == "LABELED"
    anonymous = httpx.post(f"{platform.url}/api/v1/projects/p1/graphql", json={"query": LABELS})
    assert anonymous.status_code == 401
