"""Look and feel: theme, CSS, and a small script that keeps the Compare videos playing in sync."""

from __future__ import annotations

import gradio as gr

# System fonts only: the studio must look right offline (no Google Fonts fetch).
THEME = gr.themes.Soft(
    primary_hue="indigo", secondary_hue="violet", neutral_hue="slate",
    font=["Inter", "ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)

CSS = """
#studio-header { align-items: flex-start; }
#studio-title h2 { margin-bottom: 0; }
#model-card { font-size: 0.92em; line-height: 1.45; }
#load-status { min-height: 1.5em; font-size: 0.9em; }
.hint { opacity: 0.8; font-size: 0.92em; }
.mode-note { border-left: 3px solid var(--color-accent); padding-left: 10px; }
/* tiny models render 64x64: show pixels, not blur */
.pixelated video, .pixelated img { image-rendering: pixelated; }
#result-video video { background: #111; }
#render-status { min-height: 3.2em; }
/* Gradio's own progress (and queue position) is drawn over these anchors: give it room of its own */
#render-progress, #compare-progress, #board-progress { min-height: 48px; }
/* ...and a height for that overlay: it is height:100% of a block sized only by min-height, i.e. 0, which
   clipped "queue: 2/5" away while a render waited its turn */
#render-progress > .wrap, #compare-progress > .wrap, #board-progress > .wrap { min-height: 48px; }
#compare-videos video, #compare-teacher-videos video { background: #111; }
#history-details table { font-size: 0.88em; }
#history-details td:first-child { white-space: nowrap; opacity: 0.75; }
/* Storyboard: the New board button sits level with the inputs, not stretched to the row's height */
#board-bar { align-items: flex-end; }
#board-new { max-height: 44px; margin-bottom: 10px; }
#board-progress { min-height: 24px; }
#board-live { display: none; }
/* a batch's status line changes about once a second: a fixed height keeps the table below it from moving */
#board-status { min-height: 4.6em; contain: layout paint; }
#space-banner { border-left: 3px solid var(--color-accent); padding-left: 10px; font-size: 0.92em; }
"""

# Keeps the Compare tab's videos in step (both rows: the model's and its teacher's): playing, pausing or seeking
# one moves the others.
HEAD = """
<script>
(function () {
  const BOX = "#compare-videos, #compare-teacher-videos";
  const VIDS = "#compare-videos video, #compare-teacher-videos video";
  function peers(v) {
    return v.closest(BOX) ? Array.from(document.querySelectorAll(VIDS)).filter((o) => o !== v && o.readyState > 0) : [];
  }
  function isVideo(e) { return e.target instanceof HTMLVideoElement && e.target.closest(BOX); }
  document.addEventListener("play", (e) => {
    if (!isVideo(e)) return;
    for (const o of peers(e.target)) {
      if (o.paused) { o.currentTime = e.target.currentTime % (o.duration || Infinity); o.play().catch(() => {}); }
    }
  }, true);
  document.addEventListener("pause", (e) => {
    if (!isVideo(e) || e.target.ended) return;
    for (const o of peers(e.target)) if (!o.paused) o.pause();
  }, true);
  document.addEventListener("seeked", (e) => {
    if (!isVideo(e)) return;
    for (const o of peers(e.target)) {
      if (Math.abs(o.currentTime - e.target.currentTime) > 0.15) o.currentTime = e.target.currentTime;
    }
  }, true);
  window.studioPlayCompare = function () {
    const vids = Array.from(document.querySelectorAll(VIDS)).filter((v) => v.readyState > 0);
    vids.forEach((v) => { v.pause(); v.currentTime = 0; });
    vids.forEach((v) => v.play().catch(() => {}));
    return [];
  };
})();
</script>
"""
