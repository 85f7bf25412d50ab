"""Project interfaces (Kili's ``jsonInterface``) and the label ``jsonResponse`` checks.

Supported job types (``mlTask``): ``CLASSIFICATION`` (answer ``{"categories": [{"name"}]}``),
``TRANSCRIPTION`` (``{"text"}``) and ``OBJECT_DETECTION`` (``{"annotations": [{"categories",
"boundingPoly": [{"normalizedVertices": [{"x", "y"}, ...]}], "type", "mid"}]}``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ML_TASKS", "InterfaceError", "check_interface", "check_json_response"]

ML_TASKS = frozenset({"CLASSIFICATION", "TRANSCRIPTION", "OBJECT_DETECTION"})


class InterfaceError(ValueError):
    """An interface or a label answer does not fit; the message names the job."""


def check_interface(interface: dict[str, Any]) -> None:
    """Refuse an interface without jobs, or a job without a known ``mlTask``."""
    jobs = interface.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        raise InterfaceError('jsonInterface needs a non-empty "jobs" object')
    for name, job in jobs.items():
        if not isinstance(job, dict) or job.get("mlTask") not in ML_TASKS:
            raise InterfaceError(f"job {name!r}: mlTask must be one of {sorted(ML_TASKS)}")
        if job["mlTask"] != "TRANSCRIPTION" and not _categories(job):
            raise InterfaceError(f"job {name!r}: content.categories must list the categories")


def _categories(job: dict[str, Any]) -> set[str]:
    categories = job.get("content", {}).get("categories", {})
    return set(categories) if isinstance(categories, dict) else set()


def check_json_response(interface: dict[str, Any], json_response: dict[str, Any]) -> None:
    """Refuse answers to unknown jobs, unknown categories and malformed answers."""
    jobs: dict[str, Any] = interface["jobs"]
    for name, answer in json_response.items():
        if name not in jobs:
            raise InterfaceError(f"jsonResponse answers job {name!r}, which the project lacks")
        if not isinstance(answer, dict):
            raise InterfaceError(f"job {name!r}: the answer must be an object")
        task = jobs[name]["mlTask"]
        if task == "TRANSCRIPTION":
            if not isinstance(answer.get("text"), str):
                raise InterfaceError(f'job {name!r}: a transcription answer is {{"text": "..."}}')
        elif task == "CLASSIFICATION":
            _check_categories(name, jobs[name], answer.get("categories"))
        else:
            _check_annotations(name, jobs[name], answer.get("annotations"))


def _check_categories(name: str, job: dict[str, Any], categories: Any) -> None:
    if not isinstance(categories, list) or not categories:
        raise InterfaceError(f'job {name!r}: "categories" must be a non-empty list')
    allowed = _categories(job)
    for category in categories:
        if not isinstance(category, dict) or category.get("name") not in allowed:
            raise InterfaceError(
                f"job {name!r}: category {category!r} is not one of {sorted(allowed)}"
            )


def _check_annotations(name: str, job: dict[str, Any], annotations: Any) -> None:
    if not isinstance(annotations, list):
        raise InterfaceError(f'job {name!r}: "annotations" must be a list')
    for index, annotation in enumerate(annotations):
        where = f"job {name!r} annotation {index}"
        if not isinstance(annotation, dict):
            raise InterfaceError(f"{where}: must be an object")
        _check_categories(name, job, annotation.get("categories"))
        polys = annotation.get("boundingPoly")
        if not isinstance(polys, list) or not polys:
            raise InterfaceError(f'{where}: "boundingPoly" must be a non-empty list')
        for poly in polys:
            vertices = poly.get("normalizedVertices") if isinstance(poly, dict) else None
            if (
                not isinstance(vertices, list)
                or len(vertices) < 3
                or not all(_is_point(v) for v in vertices)
            ):
                raise InterfaceError(
                    f"{where}: normalizedVertices must be 3 or more points with x, y in [0, 1]"
                )


def _is_point(vertex: Any) -> bool:
    if not isinstance(vertex, dict):
        return False
    coords = (vertex.get("x"), vertex.get("y"))
    return all(isinstance(c, int | float) and 0 <= c <= 1 for c in coords)
