"""Migrations are atomic: one that fails leaves the database at the previous version, readable, and a later
successful run migrates it."""

import sqlite3

import pytest
import sqlite_utils

from studio.store import history
from studio.store.history import SCHEMA_VERSION, HistoryStore, migrate


class Boom(Exception):
    pass


def _v1_database(path):
    db = sqlite_utils.Database(path)
    assert migrate(db, upto=1) == 1
    db["renders"].insert({"id": "old1", "created_at": "2026-01-01T00:00:00", "status": "ok", "mode": "t2v",
                          "model": "m", "prompt": "an old grey lighthouse", "seed": 1, "steps": 4})
    return db


def _schema(path) -> tuple[int, list]:
    with sqlite3.connect(path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        objects = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    return version, objects


def _fail_after(migration):
    def failing(db):
        migration(db)  # every statement of the migration ran ...
        raise Boom("the process died before the version was bumped")
    return failing


def _fail_at_fts(monkeypatch):
    """Make enable_fts fail: _m2 has added its columns and indexes by then."""
    def broken(self, *args, **kwargs):
        raise Boom("enable_fts failed halfway")
    monkeypatch.setattr(sqlite_utils.db.Table, "enable_fts", broken)


@pytest.mark.parametrize("where", ["after the body", "in the middle"])
def test_a_failed_migration_leaves_the_previous_version(tmp_path, monkeypatch, where):
    path = tmp_path / "h.db"
    _v1_database(path).conn.close()
    before = _schema(path)
    if where == "after the body":
        monkeypatch.setattr(history, "MIGRATIONS", [history._m1_initial, _fail_after(history._m2_plans),
                                                    *history.MIGRATIONS[2:]])
    else:
        _fail_at_fts(monkeypatch)
    with pytest.raises(Boom):
        HistoryStore(path)
    assert _schema(path) == before  # version 1, and not one column, index or trigger of version 2
    with sqlite3.connect(path) as conn:  # readable at version 1, full-text index included
        assert conn.execute("SELECT prompt FROM renders").fetchall() == [("an old grey lighthouse",)]
        assert conn.execute("SELECT count(*) FROM renders_fts WHERE renders_fts MATCH 'lighthouse'").fetchone() == (1,)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    monkeypatch.undo()
    store = HistoryStore(path)  # the next start migrates it all the way
    assert store.schema_version() == SCHEMA_VERSION
    assert [r["id"] for r in store.search(text="lighthouse")] == ["old1"]
    store.close()


def test_a_failed_migration_releases_the_connection(tmp_path, monkeypatch):
    """The failing migration's transaction is rolled back, so the same connection writes again afterwards."""
    db = _v1_database(tmp_path / "h.db")
    monkeypatch.setattr(history, "MIGRATIONS", [history._m1_initial, _fail_after(history._m2_plans)])
    with pytest.raises(Boom):
        migrate(db, upto=2)
    assert not db.conn.in_transaction
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    monkeypatch.setattr(history, "MIGRATIONS", [history._m1_initial, history._m2_plans])
    assert migrate(db, upto=2) == 2 and "plan_id" in db["renders"].columns_dict


def test_migrating_a_current_database_does_nothing(tmp_path):
    store = HistoryStore(tmp_path / "h.db")
    store.close()
    before = _schema(tmp_path / "h.db")
    HistoryStore(tmp_path / "h.db").close()
    assert _schema(tmp_path / "h.db") == before


@pytest.mark.parametrize("number", range(1, SCHEMA_VERSION + 1))
def test_every_migration_rolls_back_whole(tmp_path, monkeypatch, number):
    path = tmp_path / "h.db"
    db = sqlite_utils.Database(path)
    migrate(db, upto=number - 1)
    before = _schema(path)
    failing = list(history.MIGRATIONS)
    failing[number - 1] = _fail_after(history.MIGRATIONS[number - 1])
    monkeypatch.setattr(history, "MIGRATIONS", failing)
    with pytest.raises(Boom):
        migrate(db, upto=number)
    db.conn.close()
    assert _schema(path) == before
