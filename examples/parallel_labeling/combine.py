"""Combining the jobs answered by different labelers into one label (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Combined:
    json_response: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # job -> labeler
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # job -> labelers


def combine(labels_by_labeler: dict[str, dict[str, Any]], order: list[str]) -> Combined:
    """One ``jsonResponse`` holding every job answered by any labeler.

    ``labels_by_labeler`` maps each labeler to their label; ``order`` lists the labelers,
    first has priority. Group A answers job A, group B job B; when several labelers answered
    the same job differently, the first in ``order`` wins and the job is listed in
    ``conflicts`` with every labeler who answered it.
    """
    result = Combined()
    answered_by: dict[str, list[str]] = {}
    for labeler in order:
        label = labels_by_labeler.get(labeler)
        if label is None:
            continue
        for job, answer in label["jsonResponse"].items():
            answered_by.setdefault(job, []).append(labeler)
            if job not in result.json_response:
                result.json_response[job] = answer
                result.sources[job] = labeler
            elif result.json_response[job] != answer:
                result.conflicts[job] = answered_by[job]  # the same list: grows with it
    return result
