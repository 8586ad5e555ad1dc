"""Frame and chunk arithmetic for AnyFlow models (pure functions, no torch).

A video of F frames has L = (F - 1) // tf + 1 latent frames (tf: the VAE's temporal
factor). The causal FAR model generates latent frames chunk by chunk; its
``chunk_partition`` must sum to L. The released checkpoints use
[1, 3, 3, 3, 3, 3, 3, 2] for 81 frames: a first chunk of 1, then chunks of 3, with
the remainder last. ``chunk_partition`` generalises that to any L. Conditioning
(I2V / V2V context) must fill whole chunks, so context lengths are the prefix
sums of the partition: 1, 4, 7, ... latent frames = 1, 13, 25, ... frames at tf=4.
"""

from __future__ import annotations

DEFAULT_TEMPLATE = (1, 3, 3, 3, 3, 3, 3, 2)


def latent_frames(frames: int, temporal_factor: int = 4) -> int:
    return (frames - 1) // temporal_factor + 1


def pixel_frames(latents: int, temporal_factor: int = 4) -> int:
    return (latents - 1) * temporal_factor + 1


def nearest_valid_frames(frames: int, temporal_factor: int = 4, minimum: int = 1) -> int:
    """The frame count of the form tf*n + 1 closest to ``frames`` (ties round up)."""
    n = max(0, round((frames - 1) / temporal_factor + 1e-9))
    return max(minimum, n * temporal_factor + 1)


def chunk_partition(num_latent_frames: int, template: tuple[int, ...] | list[int] = DEFAULT_TEMPLATE) -> list[int]:
    """A partition of ``num_latent_frames`` shaped like ``template``: its first chunk, then full chunks, remainder last."""
    if num_latent_frames < 1:
        raise ValueError("need at least one latent frame")
    first = int(template[0])
    size = max(int(c) for c in template[1:]) if len(template) > 1 else first
    if num_latent_frames <= first:
        return [num_latent_frames]
    rest = num_latent_frames - first
    full, remainder = divmod(rest, size)
    return [first] + [size] * full + ([remainder] if remainder else [])


def context_latent_options(partition: list[int]) -> list[int]:
    """Context lengths (in latent frames) that fill whole chunks and leave at least one chunk to generate."""
    sums, total = [], 0
    for chunk in partition[:-1]:
        total += chunk
        sums.append(total)
    return sums


def fit_context(available_frames: int, total_frames: int, temporal_factor: int = 4,
                template: tuple[int, ...] | list[int] | None = None, wanted: int | None = None) -> int:
    """How many input frames a V2V render keeps as context.

    The largest count that (a) the input has, (b) leaves frames to generate, (c) for a
    causal model fills whole chunks, and (d) is at most ``wanted`` when given, else, for a
    bidirectional model, about half the render (so the continuation is more than a frame or two).
    Returns 0 when not even one frame fits.
    """
    limit = min(available_frames, total_frames - 1)
    if wanted is not None:
        limit = min(limit, wanted)
    elif template is None:
        limit = min(limit, total_frames // 2 + 1)
    if limit < 1:
        return 0
    if template is None:  # bidirectional: any tf*n + 1 prefix works
        options = [pixel_frames(n, temporal_factor) for n in range(1, latent_frames(total_frames, temporal_factor))]
    else:
        partition = chunk_partition(latent_frames(total_frames, temporal_factor), template)
        options = [pixel_frames(n, temporal_factor) for n in context_latent_options(partition)]
    fitting = [o for o in options if o <= limit]
    return max(fitting) if fitting else 0


def generated_chunks(partition: list[int], context_latents: int) -> int:
    """Chunks the FAR pipeline denoises (each runs the full step schedule); context chunks are only cached."""
    if context_latents <= 0:
        return len(partition)
    total = 0
    for k, chunk in enumerate(partition, 1):
        total += chunk
        if total >= context_latents:
            return len(partition) - k
    return 0
