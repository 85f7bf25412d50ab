"""Merging object-detection boxes of several labelers (pure functions, no platform calls).

Boxes are matched across labelers by intersection over union (IoU): each box joins the
group whose boxes it overlaps best (IoU at least ``iou_threshold``) and that has no box of
the same labeler yet, otherwise it starts a group. A group kept by a strict majority of the
labelers becomes one merged box: mean coordinates, category by majority vote (ties go to the
alphabetically first category, so the result does not depend on label order).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class Box:
    category: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)


@dataclass
class _Group:
    boxes: dict[str, Box] = field(default_factory=dict)  # labeler -> box


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes, 0 when they do not overlap."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a.area + b.area - inter)


def boxes_of(json_response: dict[str, Any], job: str) -> list[Box]:
    """The rectangles of one job of a Kili ``jsonResponse`` (bounding box of each polygon)."""
    boxes = []
    for annotation in json_response.get(job, {}).get("annotations", []):
        vertices = annotation["boundingPoly"][0]["normalizedVertices"]
        xs = [v["x"] for v in vertices]
        ys = [v["y"] for v in vertices]
        category = annotation["categories"][0]["name"]
        boxes.append(Box(category, min(xs), min(ys), max(xs), max(ys)))
    return boxes


def detection_jobs(json_responses: list[dict[str, Any]]) -> list[str]:
    """Jobs answered with ``annotations`` in any of the responses, sorted."""
    return sorted(
        {
            job
            for response in json_responses
            for job, answer in response.items()
            if isinstance(answer, dict) and "annotations" in answer
        }
    )


def _best_group(groups: list[_Group], labeler: str, box: Box, threshold: float) -> _Group | None:
    best, best_iou = None, threshold
    for group in groups:
        if labeler in group.boxes:
            continue
        score = max(iou(box, other) for other in group.boxes.values())
        if score >= best_iou:
            best, best_iou = group, score
    return best


def _merge_group(group: _Group) -> Box:
    boxes = list(group.boxes.values())
    votes = Counter(b.category for b in boxes)
    top = max(votes.values())
    category = min(c for c, n in votes.items() if n == top)
    n = len(boxes)
    return Box(
        category,
        sum(b.x0 for b in boxes) / n,
        sum(b.y0 for b in boxes) / n,
        sum(b.x1 for b in boxes) / n,
        sum(b.y1 for b in boxes) / n,
    )


def merge(
    boxes_by_labeler: dict[str, list[Box]], iou_threshold: float = IOU_THRESHOLD
) -> list[Box]:
    """The consensus boxes of several labelers (see the module docstring), sorted by position."""
    groups: list[_Group] = []
    for labeler in sorted(boxes_by_labeler):
        for box in boxes_by_labeler[labeler]:
            group = _best_group(groups, labeler, box, iou_threshold)
            if group is None:
                group = _Group()
                groups.append(group)
            group.boxes[labeler] = box
    majority = len(boxes_by_labeler) // 2 + 1
    merged = [_merge_group(g) for g in groups if len(g.boxes) >= majority]
    return sorted(merged, key=lambda b: (b.y0, b.x0, b.category))


def to_annotations(boxes: list[Box]) -> list[dict[str, Any]]:
    """Kili ``annotations`` for rectangles (vertices clockwise from the top left)."""
    return [
        {
            "categories": [{"name": b.category}],
            "type": "rectangle",
            "mid": f"consensus-{index}",
            "boundingPoly": [
                {
                    "normalizedVertices": [
                        {"x": round(b.x0, 6), "y": round(b.y0, 6)},
                        {"x": round(b.x1, 6), "y": round(b.y0, 6)},
                        {"x": round(b.x1, 6), "y": round(b.y1, 6)},
                        {"x": round(b.x0, 6), "y": round(b.y1, 6)},
                    ]
                }
            ],
        }
        for index, b in enumerate(boxes)
    ]
