"""The render engine: modes, plans, events, cancellation, validation, chunk arithmetic."""

import threading

import numpy as np
import pytest

from studio.engine import chunks, media
from studio.errors import InvalidRequest
from studio.engine.render import Plan, RenderRequest


def _events(studio, req, plan=None, cancel=None):
    return list(studio.engine.render(req, plan, cancel))


@pytest.mark.parametrize("mode", ["t2v", "i2v", "v2v"])
def test_far_renders_each_mode(studio, sample_media, mode):
    kwargs = {"i2v": {"image": str(sample_media["image"])}, "v2v": {"video": str(sample_media["video"])}}.get(mode, {})
    events = _events(studio, RenderRequest(prompt="a red circle moving right", mode=mode, steps=2, seed=3, **kwargs))
    results = [e for e in events if e.kind == "result"]
    assert [e.kind for e in events if e.kind in ("failed", "cancelled")] == []
    assert len(results) == 1
    res = results[0]
    assert res.frames.shape == (9, 32, 32, 3) and res.frames.dtype == np.uint8
    frames, fps = media.read_video(res.video_path)
    assert frames.shape == (9, 32, 32, 3) and fps == 8
    row = studio.history.get(res.record_id)
    assert row["status"] == "ok" and row["mode"] == mode and row["steps"] == 2 and row["seed"] == 3
    assert set(res.timings) >= {"load", "encode", "denoise", "decode", "write", "total"}
    # progress counts every transformer call: FAR runs the full schedule per generated chunk
    progress = [e for e in events if e.kind == "progress"]
    assert progress[-1].step == progress[-1].total and progress[-1].fraction == pytest.approx(1.0)


def test_i2v_keeps_the_first_frame(studio, sample_media):
    # with the image as a clean one-frame context, frame 0 is the (VAE round-tripped) input image
    img = media.fit_frame(media.load_image(sample_media["image"]), 32, 32)
    res = studio.engine.run(RenderRequest(prompt="x", mode="i2v", image=str(sample_media["image"]), steps=1, seed=0))[0]
    t2v = studio.engine.run(RenderRequest(prompt="x", steps=1, seed=0))[0]
    err_i2v = np.abs(res.frames[0].astype(int) - img).mean()
    err_t2v = np.abs(t2v.frames[0].astype(int) - img).mean()
    assert err_i2v < err_t2v


def test_preview_then_refine_yields_budgets_in_order_with_same_seed(studio):
    req = RenderRequest(prompt="a blue square moving up", model="t-bidi", steps=4, seed=11)
    events = _events(studio, req, Plan.refine(1, 4))
    kinds = [(e.kind, getattr(e, "budget_index", None)) for e in events if e.kind in ("progress", "result")]
    first_refine_progress = kinds.index(("progress", 1))
    preview_result = kinds.index(("result", 0))
    assert preview_result < first_refine_progress  # the preview arrives before the refine starts
    results = [e for e in events if e.kind == "result"]
    assert [(r.steps, r.role) for r in results] == [(1, "preview"), (4, "final")]
    assert {r.request["seed"] for r in results} == {11}
    # the refined result is exactly what a standalone 4-step render with that seed gives
    alone = studio.engine.run(RenderRequest(prompt="a blue square moving up", model="t-bidi", steps=4, seed=11))[0]
    assert (alone.frames == results[1].frames).all()
    rows = studio.history.plan(studio.history.get(results[0].record_id)["plan_id"])
    assert [r["steps"] for r in rows] == [1, 4] and all(r["plan_kind"] == "refine" for r in rows)


def test_comparison_returns_one_result_per_budget(studio):
    events = _events(studio, RenderRequest(prompt="a cat", model="t-bidi", seed=2), Plan.compare([1, 2, 4, 2]))
    results = [e for e in events if e.kind == "result"]
    assert [r.steps for r in results] == [1, 2, 4]
    assert len({r.video_path for r in results}) == 3
    # different budgets give different videos from the same noise
    assert not (results[0].frames == results[2].frames).all()


def test_cancel_stops_within_a_step_and_is_recorded(studio, hold_step):
    cancel = threading.Event()
    hold = hold_step(studio.models.get("t-far").pipe.scheduler, at=2)  # step 2 waits until we have cancelled
    seen = []
    for event in studio.engine.render(RenderRequest(prompt="a dog", steps=8, seed=1), Plan.refine(2, 8), cancel):
        seen.append(event)
        if event.kind == "progress" and not cancel.is_set():
            cancel.set()  # the user presses Cancel after step 1, while step 2 runs
            hold.release.set()
    assert hold.reached.is_set() and seen[-1].kind == "cancelled"
    assert [e.step for e in seen if e.kind == "progress"] == [1]  # step 2 finished after Cancel: not reported
    assert not any(e.kind == "result" for e in seen)
    assert studio.history.get(seen[-1].record_id)["status"] == "cancelled"


def test_consumer_closing_the_stream_cancels_the_render(studio, hold_step):
    cancel = threading.Event()  # only the closing stream sets it: step 2 waits for that
    hold = hold_step(studio.models.get("t-far").pipe.scheduler, at=2, release=cancel)
    stream = studio.engine.render(RenderRequest(prompt="a dog", steps=8, seed=1), cancel=cancel)
    for event in stream:
        if event.kind == "progress":
            break
    assert hold.reached.wait(30) and not cancel.is_set()
    stream.close()
    assert cancel.is_set()
    rows = studio.history.search(text="dog")
    assert [r["status"] for r in rows] == ["cancelled"]


@pytest.mark.parametrize(
    "fields, bad",
    [
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 5000}, "prompt"),
        ({"steps": 0}, "steps"),
        ({"steps": -1}, "steps"),
        ({"steps": 10_000}, "steps"),
        ({"steps": "four"}, "steps"),
        ({"seed": -5}, "seed"),
        ({"height": 30}, "height"),
        ({"width": 100_000}, "width"),
        ({"fps": 0}, "fps"),
        ({"mode": "x2v"}, "mode"),
        ({"mode": "i2v"}, "image"),
        ({"mode": "v2v", "video": "/no/such/file.mp4"}, "video"),
        ({"image": "a.png"}, "image"),
        ({"guidance_scale": 0}, "guidance_scale"),
    ],
)
def test_invalid_fields_get_a_clear_message(studio, fields, bad):
    req = RenderRequest(**{"prompt": "a fox", **fields})
    with pytest.raises(InvalidRequest) as err:
        studio.engine.validate(req)
    assert bad in err.value.errors and bad in str(err.value)


def test_validation_fills_defaults_and_rounds_frames(studio):
    req, notes = studio.engine.validate(RenderRequest(prompt="  a fox\x00 ", frames=12, steps="3"))
    assert req.prompt == "a fox" and req.steps == 3 and req.frames == 13
    assert (req.height, req.width, req.fps, req.model) == (32, 32, 8, "t-far")
    assert 0 <= req.seed < 2**32 and "frames 12 -> 13" in notes[0]


def test_request_round_trips_through_dict():
    req = RenderRequest(prompt="p", mode="v2v", video="v.mp4", seed=1, steps=8, context_frames=5)
    assert RenderRequest.from_dict(req.to_dict()) == req
    with pytest.raises(InvalidRequest, match="unknown field"):
        RenderRequest.from_dict({"prompt": "p", "stepz": 3})


@pytest.mark.parametrize(
    "latents, partition",
    [(21, [1, 3, 3, 3, 3, 3, 3, 2]), (1, [1]), (2, [1, 1]), (5, [1, 3, 1]), (9, [1, 3, 3, 2]), (11, [1, 3, 3, 3, 1])],
)
def test_chunk_partition_for_any_length(latents, partition):
    got = chunks.chunk_partition(latents)
    assert got == partition and sum(got) == latents


def test_context_fits_whole_chunks():
    # 81 frames at tf=4: partition [1,3,3,3,3,3,3,2]; context must end on a chunk boundary
    assert chunks.fit_context(100, 81, 4, chunks.DEFAULT_TEMPLATE) == 73
    assert chunks.fit_context(20, 81, 4, chunks.DEFAULT_TEMPLATE) == 13
    assert chunks.fit_context(12, 81, 4, chunks.DEFAULT_TEMPLATE) == 1
    assert chunks.fit_context(0, 81, 4, chunks.DEFAULT_TEMPLATE) == 0
    assert chunks.fit_context(100, 17, 4, None) == 9  # bidirectional: any 4n+1 prefix, about half the render
    assert chunks.fit_context(100, 17, 1, None) == 9
    assert chunks.fit_context(100, 17, 1, None, wanted=16) == 16  # unless asked for more
    assert chunks.fit_context(4, 17, 1, None) == 4
    assert chunks.generated_chunks([1, 3, 3, 2], 4) == 2


def test_v2v_context_shown_before_rendering(studio):
    # 20 input frames, 9-frame render at tf=4: partition [1,3,...] of 3 latents -> [1, 2]; context 1 frame
    req = RenderRequest(prompt="x", mode="v2v", video="clip.mp4", frames=9)
    assert studio.engine.context_frames_for(req, 20) == 1
    req17 = RenderRequest(prompt="x", mode="v2v", video="clip.mp4", frames=17)
    assert studio.engine.context_frames_for(req17, 20) == 13


def test_keyframe_first_t2v_renders_the_first_frame_then_continues_it(studio):
    """t2v = "keyframe": a one-frame call on the first frame of the render's noise, then I2V from its latents."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    req = RenderRequest(prompt="a red circle moving right", model="t-bidi-kf", steps=2, seed=5)
    events = _events(studio, req)
    res = [e for e in events if e.kind == "result"][0]
    progress = [e for e in events if e.kind == "progress"]
    assert [p.step for p in progress] == [1, 2, 3, 4] and {p.total for p in progress} == {4}
    assert [p.stage for p in progress] == ["first frame"] * 2 + ["clip"] * 2
    assert progress[-1].fraction == pytest.approx(1.0)

    pipe = studio.models.get("t-bidi-kf").pipe
    shape = (1, pipe.transformer.config.in_channels, 3, 4, 4)  # 9 frames at tf 4 -> 3 latent frames of 32/8
    noise = randn_tensor(shape, generator=torch.Generator("cpu").manual_seed(5), dtype=torch.float32)
    key = pipe("a red circle moving right", latents=noise[:, :, :1].clone(), height=32, width=32, num_frames=1,
               num_inference_steps=2, output_type="latent").frames.permute(0, 2, 1, 3, 4)
    want = pipe("a red circle moving right", latents=noise, video_latents=key, height=32, width=32, num_frames=9,
                num_inference_steps=2, output_type="np").frames[0]
    assert np.abs(res.frames.astype(int) - media.to_uint8(want).astype(int)).max() <= 1
    direct = studio.engine.run(RenderRequest(prompt="a red circle moving right", model="t-bidi", steps=2, seed=5))[0]
    assert np.abs(direct.frames.astype(int) - res.frames.astype(int)).mean() > 1  # a different path ran


def test_last_jump_sigma_sets_the_grid_of_every_call(tmp_path, models_file, tiny_dirs):
    """A catalogue entry's last_jump_sigma reaches the pipeline: both calls of a keyframe-first render use its grid."""
    from studio.engine import schedule
    from studio.config import Settings
    from studio.app.services import Studio

    folder = tiny_dirs["t-bidi"][1]
    path = tmp_path / "jump.toml"
    path.write_text(models_file.read_text() + f'\n[models.t-jump]\nsource = "local:{folder.as_posix()}"\n'
                    'modes = ["t2v", "i2v"]\nt2v = "keyframe"\nlast_jump_sigma = 0.5\n'
                    'height = 32\nwidth = 32\nframes = 9\nfps = 8\nmemory_gb = 0.01\n', encoding="utf-8")
    studio = Studio.open(Settings(data_dir=tmp_path / "data", default_model="t-jump", models_file=path, device="cpu"))
    try:
        pipe = studio.models.get("t-jump").pipe
        seen = []
        real = pipe.scheduler.set_timesteps

        def spy(*a, **kw):
            real(*a, **kw)
            seen.append([round(float(x), 4) for x in pipe.scheduler.sigmas])

        pipe.scheduler.set_timesteps = spy
        shift = pipe.scheduler.config.shift
        res = studio.engine.run(RenderRequest(prompt="a red circle moving right", model="t-jump", steps=8, seed=2))[0]
        want = schedule.describe(8, shift, 0.5)
        assert len(seen) == 2 and all(s == pytest.approx(want, abs=1e-3) for s in seen)
        assert seen[0][-2] == pytest.approx(0.5, abs=1e-3)
        seen.clear()
        studio.engine.run(RenderRequest(prompt="a red circle moving right", model="t-jump", steps=2, seed=2))
        assert seen == [pytest.approx(schedule.describe(2, shift), abs=1e-3)] * 2  # small budgets: the native grid
        native = studio.engine.run(RenderRequest(prompt="a red circle moving right", model="t-bidi-kf", steps=8,
                                                 seed=2))[0]
        assert np.abs(native.frames.astype(int) - res.frames.astype(int)).max() > 8  # the grid changed the render
    finally:
        studio.close()
