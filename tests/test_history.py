"""HistoryStore: round trip, hostile search text, filters, migrations, crashes, threads."""

import sqlite3
import threading

import pytest
import sqlite_utils

from studio.store.history import SCHEMA_VERSION, HistoryStore, Query, migrate

REQ = {"mode": "t2v", "model": "m", "prompt": "a red panda eating bamboo", "negative_prompt": "blurry", "seed": 7,
       "steps": 4, "height": 64, "width": 64, "frames": 17, "fps": 8}


def _add(store, prompt="a red panda eating bamboo", status="ok", **overrides):
    rid = store.start(dict(REQ, prompt=prompt, **overrides), overrides.get("steps", 4), "plan", "single", 0)
    store.finish(rid, status, timings={"denoise": 1.0, "total": 1.5}, video_path="/v.mp4")
    return rid


def test_round_trip(tmp_path):
    store = HistoryStore(tmp_path / "h.db")
    rid = _add(store)
    row = store.get(rid)
    assert row["request"] == REQ and row["timings"]["total"] == 1.5 and row["status"] == "ok"
    assert row["accepted"] == 0 and row["created_at"] and row["finished_at"]
    store.set_accepted(rid)
    assert store.get(rid)["accepted"] == 1


HOSTILE = [  # (search text, the prompts it finds): every word is a plain word, all required, as a prefix
    ('panda "OR', ["a panda or a fox"]),  # OR is a word here, not FTS5's operator
    ("panda OR", ["a panda or a fox"]),
    ("*", []),  # no word at all
    ("NEAR(", ["a fox near a river"]),  # NEAR is a word, not the NEAR() group
    ("'; DROP TABLE renders; --", []),
    ("a:b", ["a red panda eating bamboo"]),  # not a column filter: "a" and "b..." (bamboo)
    ('""', []),
    ("(((", []),
    ("🐼", []),
    ("-panda", ["a panda or a fox", "a red panda eating bamboo"]),  # not a NOT: the rows with panda
]


@pytest.mark.parametrize("text, found", HOSTILE, ids=[t for t, _ in HOSTILE])
def test_search_with_hostile_text_is_safe(tmp_path, text, found):
    store = HistoryStore(tmp_path / "h.db")
    for prompt in ("a red panda eating bamboo", "a panda or a fox", "a fox near a river"):
        _add(store, prompt, negative_prompt="")
    assert [r["prompt"] for r in store.search(text=text)] == found  # newest first
    assert store.count_matching(text=text) == len(found)
    assert store.count() == 3 and len(store.search(text="panda")) == 2  # the table is intact


def test_search_and_filters(tmp_path):
    store = HistoryStore(tmp_path / "h.db")
    _add(store, "a red panda", steps=4)
    _add(store, "a blue whale", steps=8, mode="i2v")
    _add(store, "a red fox", status="failed", steps=8)
    assert [r["prompt"] for r in store.search(text="red")] == ["a red fox", "a red panda"]
    assert [r["prompt"] for r in store.search(text="red", status="ok")] == ["a red panda"]
    assert [r["prompt"] for r in store.search(Query(steps=8, mode="i2v"))] == ["a blue whale"]
    assert len(store.search(text="blurry")) == 3  # negative prompts are searchable too
    assert store.search(text="zebra") == []


def test_count_matching_agrees_with_search_and_pages_are_disjoint(tmp_path):
    store = HistoryStore(tmp_path / "h.db")
    for i in range(7):
        _add(store, f"a red panda number {i}", steps=4 if i % 2 else 8)
    _add(store, "a blue whale", steps=8)
    for q in (Query(), Query(text="red"), Query(text="red", steps=8), Query(steps=4), Query(text="zebra"),
              Query(text="'; DROP TABLE renders; --"), Query(text="*"), Query(status="failed")):
        assert store.count_matching(q) == len(store.search(Query(**{**q.__dict__, "limit": 1000})))
    assert store.count_matching(text="red") == 7 and store.count_matching(text="red", steps=8) == 4
    pages = [[r["id"] for r in store.search(Query(text="red", limit=3, offset=o))] for o in (0, 3, 6)]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert len({rid for p in pages for rid in p}) == 7  # no render on two pages, none skipped
    # renders made in the same millisecond: still newest first, with text and without
    store.db.execute("UPDATE renders SET created_at = '2026-01-01T00:00:00.000+00:00'")
    for q in (Query(text="panda", limit=3), Query(limit=3, steps=4)):
        assert [r["prompt"][-1] for r in store.search(q)] == (["6", "5", "4"] if q.text else ["5", "3", "1"])


def test_migration_from_version_1(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    assert migrate(db, upto=1) == 1
    db["renders"].insert({"id": "old1", "created_at": "2026-01-01T00:00:00", "status": "ok", "mode": "t2v",
                          "model": "m", "prompt": "an old grey lighthouse", "seed": 1, "steps": 4})
    db.conn.close()
    store = HistoryStore(path)
    assert store.schema_version() == SCHEMA_VERSION >= 2
    cols = {c.name for c in store.table.columns}
    assert {"plan_id", "plan_kind", "budget_index", "finished_at", "total_seconds"} <= cols
    assert [r["id"] for r in store.search(text="lighthouse")] == ["old1"]
    _add(store, "a new lighthouse")  # FTS triggers still work after the migration
    assert len(store.search(text="lighthouse")) == 2


def test_running_rows_become_interrupted_by_recovery(tmp_path):
    store = HistoryStore(tmp_path / "h.db")
    rid = store.start(REQ, 4, "p", "single", 0)
    store.close()
    again = HistoryStore(tmp_path / "h.db")
    assert again.get(rid)["status"] == "running"  # opening changes nothing (tests/test_recovery.py)
    assert again.mark_interrupted() == 1  # the owner's crash recovery
    assert again.get(rid)["status"] == "interrupted"
    with sqlite3.connect(tmp_path / "h.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_many_threads_write_one_row_each(tmp_path):
    store = HistoryStore(tmp_path / "h.db")
    ids, errors = [], []

    def work(i):
        try:
            ids.append(_add(store, f"prompt number {i}"))
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and store.count() == 16 and len(set(ids)) == 16


def test_delete_removes_row_and_files(tmp_path):
    store = HistoryStore(tmp_path / "h.db")
    video, thumb = tmp_path / "v.mp4", tmp_path / "v.png"
    video.write_bytes(b"x")
    thumb.write_bytes(b"y")
    rid = store.start(REQ, 4, "p", "single", 0)
    store.finish(rid, "ok", video_path=str(video), thumb_path=str(thumb))
    assert store.delete(rid)
    assert store.get(rid) is None and not video.exists() and not thumb.exists()


def test_history_tab_pages_through_older_renders(studio):
    from studio.ui import history as tab

    for i in range(tab.PAGE * 2 + 5):
        _add(studio.history, f"a red panda number {i}")
    _add(studio.history, "a blue whale")
    args = ("panda", "Any", "Any", "Any", "Any", False)
    seen = []
    for page in range(3):
        items, ids, summary, nav = tab.search(studio, *args, page=page)
        seen += ids
        first = page * tab.PAGE + 1
        assert f"Renders {first}–{first + len(ids) - 1} of {tab.PAGE * 2 + 5}" in summary, summary
        assert nav == {"page": page, "older": page < 2} and len(items) == len(ids)
    assert len(seen) == len(set(seen)) == tab.PAGE * 2 + 5  # every panda once, newest first, none lost
    made = [studio.history.get(rid)["created_at"] for rid in seen]
    assert made == sorted(made, reverse=True)  # newest first across the pages
    # past the end (the last page emptied by deletes): the last page that has renders
    _, ids, _, nav = tab.search(studio, *args, page=9)
    assert nav["page"] == 2 and ids == seen[-5:]
    # a search with one page hides the pager; a long one shows it with only the way that leads somewhere
    _, _, summary, nav = tab.search(studio, "whale", "Any", "Any", "Any", "Any", False)
    newer, older = tab.pager_buttons(nav)
    assert "1 render shown" in summary and not newer.visible and not older.visible
    newer, older = tab.pager_buttons({"page": 0, "older": True})
    assert newer.visible and not newer.interactive and older.interactive
