"""The blind Review view of a sweep (studio/jobs/sweep_review.py): one clip at a time in the sweep's random order, with
no budget, model or time on the page, Accept / Reject, and the keyboard: a accept, r reject, arrows to move.
The current clip's id stays on the server (a gr.State); the page gets the clip's position, a count and a video
copied without metadata under a random name.
"""

from __future__ import annotations

import gradio as gr

from ..jobs import sweep_review
from ..errors import StudioError

# Keys for the Review view (in the page's head, see ui/__init__.launch_options): only while it is on screen and the
# focus is not in a text field.
KEYS_JS = """
<script>
(function () {
  const KEYS = {a: "#sweep-accept", r: "#sweep-reject", ArrowRight: "#sweep-next", ArrowLeft: "#sweep-prev"};
  document.addEventListener("keydown", (e) => {
    const target = KEYS[e.key];
    const view = document.querySelector("#sweep-review-video");
    if (!target || !view || view.offsetParent === null || e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = (document.activeElement && document.activeElement.tagName) || "";
    if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) || document.activeElement.isContentEditable) return;
    const button = document.querySelector(target);
    if (button) { e.preventDefault(); button.click(); }
  });
})();
</script>
"""
EMPTY = "Pick a sweep with rendered clips to review them blind."


def show(studio, sid, index: int):
    """(counter text, video, index, current item id) for the clip at ``index`` of the review order."""
    if not sid:
        return EMPTY, None, 0, None
    try:
        clip = sweep_review.clip(studio, sid, int(index or 0))
    except StudioError as exc:
        return f"**{exc}**", None, 0, None
    verdict = f" · this clip: **{clip['verdict']}**" if clip["verdict"] else ""
    text = (f"Clip **{clip['index'] + 1} of {clip['total']}** · {clip['reviewed']} reviewed{verdict}  \n"
            "Keys: **a** accept, **r** reject, **←/→** move.")
    return text, clip["video"], clip["index"], clip["item"]


def judge(studio, sid, index, item, verdict: str):
    """Record the verdict on the clip shown, then show the next one."""
    if sid and item:
        try:
            sweep_review.review(studio, sid, item, verdict)
        except StudioError as exc:
            return f"**{exc}**", gr.update(), index, item
    return show(studio, sid, int(index or 0) + 1)


def build(studio, picker) -> dict:
    index, item = gr.State(0), gr.State(None)
    counter = gr.Markdown(EMPTY, elem_id="sweep-review-counter")
    video = gr.Video(autoplay=True, loop=True, interactive=False, height=320, label="Clip",
                     elem_id="sweep-review-video")
    with gr.Row():
        prev_btn = gr.Button("← Previous", elem_id="sweep-prev", size="sm")
        reject_btn = gr.Button("Reject (r)", elem_id="sweep-reject", variant="stop")
        accept_btn = gr.Button("Accept (a)", elem_id="sweep-accept", variant="primary")
        next_btn = gr.Button("Next →", elem_id="sweep-next", size="sm")
    outputs = [counter, video, index, item]
    picker.change(lambda sid: show(studio, sid, 0), picker, outputs, api_visibility="private")
    prev_btn.click(lambda sid, i: show(studio, sid, int(i or 0) - 1), [picker, index], outputs,
                   api_visibility="private")
    next_btn.click(lambda sid, i: show(studio, sid, int(i or 0) + 1), [picker, index], outputs,
                   api_visibility="private")
    accept_btn.click(lambda sid, i, it: judge(studio, sid, i, it, "accept"), [picker, index, item], outputs,
                     api_visibility="private")
    reject_btn.click(lambda sid, i, it: judge(studio, sid, i, it, "reject"), [picker, index, item], outputs,
                     api_visibility="private")
    return {"outputs": outputs}
