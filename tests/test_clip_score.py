"""The sweep's CLIP text-video score (issue 26): on with a CLIP model in the hub cache (a tiny one built here from
config, laid out as the hub caches it), off with the reason when there is none; nothing is downloaded."""

import json

import numpy as np
import pytest

from studio.engine import clip_score, metrics


def _tiny_clip(snapshot):
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    snapshot.mkdir(parents=True)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{c: 2 + i for i, c in enumerate(letters)},
             **{f"{c}</w>": 28 + i for i, c in enumerate(letters)}}
    (snapshot / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (snapshot / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(str(snapshot / "vocab.json"), str(snapshot / "merges.txt"))
    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(text_config=dict(vocab_size=len(vocab), max_position_embeddings=77, **small),
                        vision_config=dict(image_size=32, patch_size=8, **small), projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(snapshot)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(snapshot)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hub")
    _tiny_clip(cache / "models--test--tiny-clip" / "snapshots" / "0123abcd")
    (cache / "models--test--not-a-model" / "snapshots" / "x").mkdir(parents=True)
    return cache


def _clip(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)


def test_a_cached_clip_model_scores_clips(hub):
    assert clip_score.find_cached(hub)[0] == "test/tiny-clip"
    scorer = clip_score.cached_scorer(hub)
    assert scorer is not None and clip_score.cached_scorer(hub) is scorer  # loaded once
    a, b = scorer(_clip(0), "a red circle"), scorer(_clip(1), "a red circle")
    assert 0.0 <= a <= 100.0 and a == scorer(_clip(0), "a red circle")  # deterministic
    assert a != b or a != scorer(_clip(0), "zzz zzz")  # it looks at the frames and the text
    assert clip_score.why_off(hub) is None
    out = metrics.measure(_clip(0), "a red circle", judge_on=False, clip=scorer)
    assert out["clip_score"] == a and "sharpness" in out


def test_without_a_cached_clip_model_the_score_is_off_and_says_why(tmp_path):
    assert clip_score.cached_scorer(tmp_path) is None
    assert "no CLIP model in the hub cache" in clip_score.why_off(tmp_path)
    assert "clip_score" not in metrics.measure(_clip(0), "a red circle", judge_on=False)


def test_a_broken_cached_clip_is_off_with_its_reason(tmp_path):
    snapshot = tmp_path / "models--x--clip-broken" / "snapshots" / "1"
    snapshot.mkdir(parents=True)
    for name in ("config.json", "processor_config.json", "vocab.json"):
        (snapshot / name).write_text(json.dumps({"model_type": "clip"}), encoding="utf-8")
    (snapshot / "model.safetensors").write_bytes(b"not weights")
    assert clip_score.cached_scorer(tmp_path) is None
    assert "does not load" in clip_score.why_off(tmp_path)
