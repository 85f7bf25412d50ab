"""The plugin name rule (executor.identifiers) on what a request cannot carry, on scripts,
and its key; the 0025 migration on SQLite (tests/integration/test_postgres.py runs it on
PostgreSQL). Every entry point's refusals: tests/integration/test_plugin_names.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.errors import Conflict, InvalidIdentifier, checked_identifier
from executor.identifiers import IdKind, check_identifier, identifier_problem, plugin_name_key
from executor.store import plugins as plugin_store
from executor.store.db import Database
from tests.name_key_migration import (
    add_plugin,
    check_old_names_get_keys_and_case_twins_keep_working,
)

RULE = (
    "use 1 to 64 printable characters (letters, digits, punctuation, single spaces between "
    "words), no '/', and no word mixing scripts"
)


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidIdentifier) as refused:
        checked_identifier(IdKind.PLUGIN, "qa\ud800bot", "name")
    assert refused.value.message == (
        f"plugin name 'qa\\ud800bot' is not allowed: character 3 is U+D800, a lone "
        f"surrogate; {RULE}"
    )
    assert refused.value.field == "name"


@pytest.mark.parametrize(
    "name",
    [
        "My first kili plugin",
        "日本語のプラグイン v2",  # Han, Hiragana, Katakana and Latin: one word may mix them
        "한국어 plugin",
        "Плагин для проверки",  # one script per word
        "café et crème",
        "QA: check #1 (50%)?",
        "x" * 64,
        "e\u0301" * 64,  # 128 code points, 64 characters once composed
    ],
)
def test_names_as_people_write_them_are_allowed(name: str) -> None:
    assert identifier_problem(IdKind.PLUGIN, name) is None


@pytest.mark.parametrize(
    ("name", "flaw"),
    [
        (
            "qa_b\u043et",
            "mixes Latin and Cyrillic letters ('\u043e' is U+043E CYRILLIC SMALL LETTER O)",
        ),
        ("\U0001d42a\U0001d41a_b\u03bft", "mixes Latin and Greek letters"),  # bold q, a
        ("payp\u0430l", "mixes Latin and Cyrillic letters"),
    ],
)
def test_a_word_mixing_scripts_is_refused(name: str, flaw: str) -> None:
    problem = identifier_problem(IdKind.PLUGIN, name)
    assert problem is not None and flaw in problem, problem


def test_names_are_stored_composed_and_keyed_without_case_or_form() -> None:
    assert check_identifier(IdKind.PLUGIN, "Cafe\u0301 bot") == "Caf\u00e9 bot"
    key = plugin_name_key("qa_bot")
    for twin in ("QA_BOT", "Qa_Bot", "\uff51\uff41_bot", "\U0001d42a\U0001d41a_bot"):
        assert plugin_name_key(twin) == key, twin
    assert plugin_name_key("Stra\u00dfe") == plugin_name_key("STRASSE")  # full case folding
    assert plugin_name_key("qa bot") != key
    assert len(plugin_name_key("\ufdfa" * 64)) == 64  # a digest, however long it folds


def test_other_identifiers_stay_strict() -> None:
    for kind in (IdKind.PROJECT, IdKind.TENANT, IdKind.NODE, IdKind.RUNTIME):
        assert identifier_problem(kind, "My project") is not None, kind


def test_name_key_migration_on_sqlite(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        check_old_names_get_keys_and_case_twins_keep_working(database, caplog)
    finally:
        database.dispose()


def test_a_twin_created_at_the_same_time_is_a_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests that both saw the name free: the unique index refuses the second."""
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        database.migrate()
        add_plugin(database, "default", "qa_bot")
        # The second request checked before the first one's row was written.
        monkeypatch.setattr(plugin_store, "check_name_free", lambda *_: None)
        with pytest.raises(Conflict) as refused:
            add_plugin(database, "default", "QA_bot")
        assert refused.value.message == (
            "another request created a plugin named 'QA_bot' (or that name but for case or "
            "Unicode form) at the same time: send again to see which"
        )
        with database.session() as session:
            assert [p.name for p in plugin_store.list_plugins(session, "default")] == ["qa_bot"]
    finally:
        database.dispose()
