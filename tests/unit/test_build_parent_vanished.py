"""A build whose cached step's image was removed while it ran (another build's image GC:
removing an image removes its untagged parents) is built once more, whichever of the
classic builder's two errors says so; any other failed step fails the build at once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from executor.engine.builds import (
    BuildAbort,
    StepFailed,
    _stream_build,
    once_more_if_a_parent_vanished,
)
from executor.errors import BuildFailed

PARENT = "sha256:" + "19" * 32
AT_START = f'unable to find image "{PARENT}"'
AT_COMMIT = f"failed to export image: failed to set parent {PARENT}: unknown parent image ID"


class ScriptedBuilds:
    """The docker API's ``build``: each call streams the next list of chunks."""

    def __init__(self, *streams: list[dict[str, Any]]) -> None:
        self.streams = list(streams)

    def build(self, **_: Any) -> Iterator[dict[str, Any]]:
        return iter(self.streams.pop(0))


def stream(builds: ScriptedBuilds, output: list[str]) -> None:
    _stream_build(builds, b"", "p:1", output.append, BuildAbort(), {})  # type: ignore[arg-type]


@pytest.mark.parametrize("error", [AT_START, AT_COMMIT])
def test_either_error_of_a_vanished_parent_builds_once_more(error: str) -> None:
    builds = ScriptedBuilds(
        [{"stream": "Step 1/3 : FROM flavor\n"}, {"error": error}],
        [{"stream": "Successfully built abc\n"}],
    )
    output: list[str] = []

    once_more_if_a_parent_vanished(lambda: stream(builds, output), output.append)

    assert builds.streams == []  # built twice
    assert output == [
        "Step 1/3 : FROM flavor\n",
        "\n(an image the build's cache used was removed meanwhile: building again)\n",
        "Successfully built abc\n",
    ]


def test_a_parent_vanishing_twice_fails_the_build_with_the_engines_error() -> None:
    builds = ScriptedBuilds([{"error": AT_COMMIT}], [{"error": AT_COMMIT}])

    with pytest.raises(BuildFailed) as failed:
        once_more_if_a_parent_vanished(lambda: stream(builds, []), lambda _: None)

    assert failed.value.message == f"{AT_COMMIT}: read the build log above"


def test_another_failed_step_is_not_built_again() -> None:
    error = "The command '/bin/sh -c pip install x' returned a non-zero code: 1"
    builds = ScriptedBuilds([{"stream": " ---> Running in 0123456789ab\n"}, {"error": error}])

    with pytest.raises(StepFailed) as failed:
        once_more_if_a_parent_vanished(lambda: stream(builds, []), lambda _: None)

    assert (failed.value.error, failed.value.container) == (error, "0123456789ab")


def test_an_unrelated_parent_message_is_not_taken_for_a_vanished_one() -> None:
    builds = ScriptedBuilds([{"error": "failed to set parent: permission denied"}])

    with pytest.raises(StepFailed):
        stream(builds, [])
