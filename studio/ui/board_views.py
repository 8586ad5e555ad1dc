"""The Storyboard tab's reads and texts (no gradio): a board's thumbnails, its table, the finals note.

One view of a board reads its shots' history rows in one query (``Prefetched``), so opening a board costs a
fixed number of queries whatever its size; the batch handlers build one shot's tile and row the same way.
"""

from __future__ import annotations

import base64
import random
import re
import shutil
import uuid
from pathlib import Path

import pandas as pd

from ..jobs import continuity
from ..engine import lora
from ..jobs.shot_rules import shot_loras
from ..errors import StudioError
from ..engine.render import MAX_SEED
from ..jobs.boards import BoardRunner
from . import format as fmt
from . import guard, spacemode
from .history import placeholder

COLUMNS = ["#", "Prompt", "Mode", "Seed", "Length", "✓", "Preview", "Final"]
GALLERY_COLUMNS = 6


def gallery_height(count: int) -> int:
    """Tall enough for the rows of tiles there are (up to three, then it scrolls)."""
    rows = min(3, max(1, -(-count // GALLERY_COLUMNS)))
    return 24 + rows * 112


MODE_CHOICES = [("Text → Video", "t2v"), ("Image → Video", "i2v"), ("Video → Video", "v2v")]
DEFAULT_FRAMES = 0  # the frames dropdown's "model default"
EMPTY_STATUS = ("Create a board, add shots (a prompt each), then **Preview all**: every shot renders cheaply, one "
                "after another. Approve the keepers and **Render finals**.")


def new_seed() -> int:
    return random.randint(0, MAX_SEED)


def parse_loras(text) -> list[list]:
    """The shot editor's "file:strength, file2" -> [[file, strength], ...] (strength 1 when left out)."""
    items = [lora.parse_cli(part.strip()) for part in str(text or "").split(",") if part.strip()]
    return shot_loras(items)


def loras_text(loras) -> str:
    return ", ".join(f"{f}:{s:g}" for f, s in loras or ())


def file_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name or "board").strip("-").lower()[:40] or "board"


class Prefetched:
    """Shots' history rows (each one's preview and final), read in one query; ``get`` answers like
    ``HistoryStore.get``, so continuity and the runner's ``pending`` can read from it."""

    def __init__(self, history, shots):
        self.rows = history.get_many(rid for shot in shots for rid in (shot.preview_id, shot.final_id))

    def get(self, rid):
        return self.rows.get(rid) if rid else None


class BoardViews:
    """Board reads and view-building for one studio (kept apart from the layout so tests can call it)."""

    def __init__(self, studio, runner: BoardRunner | None = None):
        self.studio = studio
        self.runner = runner or BoardRunner(studio)
        self.boards = self.runner.boards

    # ---- reads ---------------------------------------------------------------------------
    def sid(self, session) -> str | None:
        return spacemode.session_id(self.studio, session)

    def board(self, board_id, sid):
        if not board_id:
            return None
        try:
            return self.boards.get(board_id, sid)
        except StudioError:
            return None

    def row(self, record_id):
        return self.studio.history.get(record_id) if record_id else None

    def prefetch(self, board, rows: Prefetched | None = None) -> Prefetched:
        """The board's history rows in one query (or ``rows``, already read)."""
        return rows if rows is not None else Prefetched(self.studio.history, board.shots if board else [])

    def rendered(self, shot, stage, rows: Prefetched | None = None):
        """The shot's history row for a stage, if that render finished and its file is still there."""
        rid = getattr(shot, f"{stage}_id")
        row = rows.get(rid) if rows is not None else self.row(rid)
        if row and row.get("status") == "ok" and guard.servable(row.get("video_path"), guard.roots(self.studio)):
            return row
        return None

    def latest(self, shot, rows: Prefetched | None = None):
        for stage in ("final", "preview"):
            row = self.rendered(shot, stage, rows)
            if row:
                return stage, row
        return None, None

    def spec(self, board):
        try:
            return self.studio.registry.get((board.model if board else None) or self.studio.settings.default_model)
        except StudioError:
            return None

    # ---- text ------------------------------------------------------------------------------
    @staticmethod
    def budget_text(row) -> str:
        if not row:
            return "—"
        text = f"{fmt.steps_word(row['steps'])} · {fmt.seconds(fmt.render_seconds(row.get('timings')))}"
        if row.get("capped"):
            text += f" (capped from {row.get('requested_steps')})"
        return text

    def table(self, board, rows: Prefetched | None = None) -> pd.DataFrame:
        rows = self.prefetch(board, rows)
        return pd.DataFrame([self.table_row(board, shot, rows) for shot in (board.shots if board else [])],
                            columns=COLUMNS)

    def table_row(self, board, shot, rows: Prefetched) -> list:
        stale = continuity.stale_stages(rows, board, shot)  # its previous shot changed
        prompt = shot.prompt if len(shot.prompt) <= 70 else shot.prompt[:68] + "…"
        return [shot.position + 1, prompt, continuity.mode_text(board, shot, fmt.MODE_SHORT), shot.seed,
                shot.frames or "—", "✓" if shot.approved else "",
                *(self.budget_text(self.rendered(shot, stage, rows)) + (" · stale" if stage in stale else "")
                  for stage in ("preview", "final"))]

    def gallery(self, board, rows: Prefetched | None = None) -> list:
        rows = self.prefetch(board, rows)
        allowed = guard.roots(self.studio)
        items = []
        for shot in board.shots if board else []:
            thumb, caption = self.tile(shot, rows, allowed)
            items.append((str(thumb) if thumb else placeholder(self.studio, "not rendered"), caption))
        return items

    def tile(self, shot, rows: Prefetched, allowed=None) -> tuple[Path | None, str]:
        """A shot's thumbnail (None: not rendered) and caption: number, approval and stage only (steps and
        seconds are in the table)."""
        stage, row = self.latest(shot, rows)
        thumb = guard.servable(row.get("thumb_path"), allowed or guard.roots(self.studio)) if row else None
        return thumb, f"#{shot.position + 1}{' ✓' if shot.approved else ''}{' ' + stage if stage else ''}"

    def shot_delta(self, board, shot) -> dict:
        """What the page changes when one shot finished: its tile (the thumbnail inline, a few kB) and its
        table row, for the Storyboard's live component (``board_live``, a JSON list of these); nothing else is
        re-sent."""
        rows = Prefetched(self.studio.history, [shot])
        thumb, caption = self.tile(shot, rows)
        kind = "jpeg" if thumb and thumb.suffix.lower() in (".jpg", ".jpeg") else "png"
        image = f"data:image/{kind};base64," + base64.b64encode(thumb.read_bytes()).decode() if thumb else None
        return {"shot": shot.id, "index": shot.position, "count": len(board.shots), "caption": caption,
                "tile": image, "row": [str(v) for v in self.table_row(board, shot, rows)]}

    def finals_note(self, board, rows: Prefetched | None = None) -> str:
        if board is None or not board.shots:
            return ""
        rows = self.prefetch(board, rows)
        approved = [s for s in board.shots if s.approved]
        previewed = sum(1 for s in board.shots if self.rendered(s, "preview", rows))
        if not approved:
            return (f"Previewed {previewed} of {len(board.shots)} shots · none approved yet: select a shot and press "
                    "**✓ Approve**; finals render only approved shots.")
        todo, done = self.runner.pending(board, "final", rows)
        policy = self.policy(board.final_policy)
        note = (f"Previewed {previewed} of {len(board.shots)} · **{len(approved)} approved** · finals at "
                f"**{board.final_policy}** ({fmt.steps_word(policy.steps) if policy else '?'}): "
                f"{len(done)} done, {len(todo)} to render.")
        if done and todo:
            note += " Render finals carries on where it stopped: finished finals are not redone."
        stopped = self.boards.batches(board.id, status="interrupted")
        if stopped and todo and stopped[-1]["stage"] == "final":
            note += " (A finals batch was interrupted; it resumes.)"
        return note

    def policy(self, name):
        try:
            return self.studio.policies.get(name)
        except StudioError:
            return None

    def policy_choices(self) -> list[tuple[str, str]]:
        return [(f"{p.name} · {fmt.steps_word(p.steps)}", p.name) for p in self.studio.policies.policies.values()]

    def board_choices(self, sid) -> list[tuple[str, str]]:
        return [(f"{b['name']} · {b['shots']} shot{'s' if b['shots'] != 1 else ''}", b["id"])
                for b in self.boards.list(session=sid)]

    def frame_choices(self, board) -> list:
        spec = self.spec(board)
        return [("Model default", DEFAULT_FRAMES)] + (fmt.frame_choices(spec) if spec else [])

    def keep_input(self, path, sid) -> str | None:
        """An uploaded first frame / clip copied under the studio's renders folder, so the board keeps it
        after Gradio's upload cache is cleared (and across restarts)."""
        if not path:
            return None
        src = Path(str(path))
        if guard.servable(src, guard.roots(self.studio)):
            return str(src.resolve())
        # only the browser's uploads (Gradio's upload folder) are copied in: never an arbitrary server path
        if not guard.servable(src, guard.input_roots(self.studio)):
            raise StudioError(f"The input file {src.name} is gone or not an upload: upload it again.")
        dest = Path(self.studio.settings.renders_dir) / (sid or "") / "inputs" / f"{uuid.uuid4().hex[:12]}{src.suffix.lower()}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return str(dest)


def default_policies(studio) -> tuple[str, str]:
    """The policies a new board previews and finishes at: 'preview' and 'final' where they exist."""
    names = studio.policies.names()
    return ("preview" if "preview" in names else names[0]), ("final" if "final" in names else names[-1])


