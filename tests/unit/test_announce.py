"""A queue announcement's payload (``executor.store.announce``): the placements of the runs
it announces, and whether a node looks at the queue on hearing it: only a payload it can
read that names no placement the node may run keeps it from looking."""

from __future__ import annotations

import pytest

from executor.store.announce import MAX_PAYLOAD_CHARS, announcement, encoded, worth_a_look
from executor.store.claim_selection import NodeClaim

ZONE_A = NodeClaim("a", frozenset({"runc"}), {"zone": "a", "name": "w1"}, "runc")
GVISOR_B = NodeClaim("b", frozenset({"runc", "runsc"}), {"zone": "b"}, "runc")


def test_an_announcement_lists_each_placement_once_in_a_stable_order() -> None:
    placements = [
        (None, {"zone": "a", "name": "w1"}),
        ("runsc", None),
        (None, {"name": "w1", "zone": "a"}),  # the same selector, keys in another order
        ("runsc", {}),  # no labels asked: the same as none
    ]
    assert (
        announcement(map(encoded, placements)) == '[["runsc",null],[null,{"name":"w1","zone":"a"}]]'
    )
    assert announcement(map(encoded, reversed(placements))) == announcement(
        map(encoded, placements)
    )


def test_an_announcement_too_long_for_notify_is_empty() -> None:
    many = [(None, {"name": f"node-{n}"}) for n in range(300)]
    assert len(announcement(map(encoded, many[:10]))) <= MAX_PAYLOAD_CHARS
    assert announcement(map(encoded, many)) == ""


@pytest.mark.parametrize(
    ("placements", "looks_a", "looks_b"),
    [
        ([(None, {"zone": "a"})], True, False),  # labels only node a carries
        ([("runsc", None)], False, True),  # a runtime only node b has
        ([(None, {"zone": "a"}), ("runsc", None)], True, True),  # one run for each
        ([(None, None)], True, True),  # no placement: any node with the default runtime
        ([(None, {"zone": "a", "name": "w2"})], False, False),  # every label must match
        ([("kata", None)], False, False),  # a runtime nobody has
    ],
)
def test_a_node_looks_only_when_it_may_run_an_announced_run(
    placements: list[tuple[str | None, dict[str, str] | None]], looks_a: bool, looks_b: bool
) -> None:
    payload = announcement(map(encoded, placements))
    assert (worth_a_look(payload, ZONE_A), worth_a_look(payload, GVISOR_B)) == (looks_a, looks_b)


@pytest.mark.parametrize(
    "payload",
    [
        None,  # reconnected: anything may have been announced meanwhile
        "",  # an announcement without placements (or too long for them)
        "not json",
        "{}",
        '[["runsc"]]',
        '[["runsc",null,1]]',
        "[[1,null]]",
        '[[null,["zone","b"]]]',
        "[" + '["kata",null],' * 400 + '["kata",null]]',  # longer than any announcement
        "[" * 3000 + "]" * 3000,  # nested deeper than the parser goes
    ],
)
def test_a_payload_it_cannot_read_makes_a_node_look(payload: str | None) -> None:
    assert worth_a_look(payload, ZONE_A)


def test_a_node_that_has_not_joined_yet_looks() -> None:
    assert worth_a_look('[["kata",null]]', None)
    assert not worth_a_look('[["kata",null]]', ZONE_A)
