"""Scale (issue 27): ids that never collide, followed jobs' places in a fixed number of queries, board import
and opening in a fixed number of queries per board."""

import sqlite3

import pytest

from studio.store import history as history_mod
from studio.jobs.shot_rules import board_store
from studio.jobs.dispatcher import Dispatcher, JobStream
from studio.store.history import HistoryStore, insert_with_fresh_id, new_id
from studio.store.queue import QueueStore


class Statements:
    """Counts the SQL statements run on a connection (sqlite3's trace callback), by a word they contain."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn, self.seen = conn, []

    def __enter__(self):
        self.conn.set_trace_callback(self.seen.append)
        return self

    def __exit__(self, *exc):
        self.conn.set_trace_callback(None)

    def count(self, word: str = "") -> int:
        return sum(1 for s in self.seen if word.lower() in s.lower())


@pytest.fixture()
def store(tmp_path):
    h = HistoryStore(tmp_path / "history.db")
    yield h
    h.close()


def test_200k_ids_inserted_in_a_tight_loop_never_collide(tmp_path):
    conn = sqlite3.connect(tmp_path / "ids.db")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
    with conn:
        for _ in range(200_000):
            conn.execute("INSERT INTO t (id) VALUES (?)", [new_id()])  # an IntegrityError fails the test
    ids = [row[0] for row in conn.execute("SELECT id FROM t ORDER BY rowid")]
    assert len(set(ids)) == 200_000
    stamps = [i[:19] for i in ids]  # YYYYmmdd-HHMMSS-mmm: made in order, they sort in order
    assert stamps == sorted(stamps)
    assert all(len(i) == 40 and int(i[20:], 16) >= 0 for i in ids[:100])


def test_an_id_already_taken_is_replaced_not_a_failed_render(store, monkeypatch):
    first = store.start({"prompt": "a", "mode": "t2v"}, 1, "plan-a", "single", 0)
    fresh = iter([first, "20261207-000000-000-" + "0" * 20])  # the next id collides, the one after does not
    monkeypatch.setattr(history_mod, "new_id", lambda: next(fresh))
    second = store.start({"prompt": "b", "mode": "t2v"}, 1, "plan-b", "single", 0)
    assert second != first and store.get(second)["prompt"] == "b" and store.get(first)["prompt"] == "a"


def test_retry_gives_up_on_other_errors_and_after_a_few_tries():
    def insert_fails(message):
        def insert(_rid):
            raise sqlite3.IntegrityError(message)
        return insert
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        insert_with_fresh_id(insert_fails("NOT NULL constraint failed: renders.status"))
    with pytest.raises(sqlite3.IntegrityError):
        insert_with_fresh_id(insert_fails("UNIQUE constraint failed: renders.id"), tries=3)


def test_ids_made_before_keep_working(store):
    old = "20261101-120000-abc123"  # the former format: local second + 24 random bits
    store.table.insert({"id": old, "created_at": "2026-11-01T12:00:00.000+00:00", "status": "ok", "prompt": "old"})
    store.start({"prompt": "new", "mode": "t2v"}, 1, "plan", "single", 0)
    assert store.get(old)["prompt"] == "old"
    assert store.get_many([old])[old]["prompt"] == "old"
    boards = board_store(store)
    board = boards.create("old board", board_id="20261101-120000-def456")
    assert boards.add_shot(board.id, "a shot").board_id == "20261101-120000-def456"


def test_followed_jobs_places_come_from_two_queries_whatever_their_number(store):
    queue = QueueStore(store)
    ids = [queue.add({"request": {"prompt": f"job {i}"}}) for i in range(40)]
    queue.claim("w")  # the first runs: the others wait, places 1..39
    stream = JobStream(Dispatcher(None, queue))
    for jid in ids:
        stream.add(jid)
    with Statements(store.db.conn) as sql:
        waiting = dict(stream._look())
    assert sql.count("select") == 2
    assert {jid: (w.position, w.waiting) for jid, w in waiting.items()} == {jid: queue.place(jid) for jid in ids[1:]}
    assert waiting[ids[5]].position == 5 and waiting[ids[5]].waiting == 39


def test_adding_a_shot_runs_the_same_statements_on_a_big_board(store):
    boards = board_store(store)
    small, big = boards.create("small"), boards.create("big")
    for _ in range(3):
        boards.add_shot(small.id, "s")
    for _ in range(200):
        boards.add_shot(big.id, "b")
    counts = []
    for board in (small, big):
        with Statements(store.db.conn) as sql:
            boards.add_shot(board.id, "one more", position=1)
        counts.append(len(sql.seen))
    assert counts[0] == counts[1], counts  # sqlite-utils adds a few PRAGMAs of its own: the same few
    assert [s.prompt for s in boards.get(big.id).shots[:3]] == ["b", "one more", "b"]
    assert [s.position for s in boards.get(big.id).shots] == list(range(201))


def test_opening_a_board_reads_history_once_whatever_its_size(studio):
    from studio.ui.board_views import BoardViews

    ui, counts = BoardViews(studio), []
    for size in (3, 30):
        board = ui.boards.create(f"{size} shots")
        for i in range(size):
            shot = ui.boards.add_shot(board.id, f"shot {i}", continues=i % 2 == 1)
            rid = studio.history.start({"prompt": shot.prompt, "mode": "t2v"}, 1, f"p{size}-{i}", "board", 0)
            studio.history.finish(rid, "ok")
            ui.boards.set_render(shot.id, "preview", rid)
            ui.boards.approve(shot.id, True)
        board = ui.boards.get(board.id)
        with Statements(studio.history.db.conn) as sql:
            rows = ui.prefetch(board)
            ui.gallery(board, rows), ui.table(board, rows), ui.finals_note(board, rows)
        counts.append(sql.count("from renders"))
    assert counts == [1, 1], counts
