"""Cheap looks at a render in flight: per-step previews and, for causal models, finished chunks.

Per-step previews: the model's current estimate of the clean video, x0 = z_t - sigma_t * u (u is the mean
velocity of the step just taken, recovered from consecutive latents), shown through a linear latent-to-RGB
projection instead of the VAE. The projection is fitted once per model by least squares on images encoded
with the model's own VAE, so it works for any AnyFlow checkpoint.

Chunk streaming: the Wan VAE is causal in time, so decoding latent frames one after another with its feature
cache kept between chunks gives exactly the frames a whole-video decode gives. The engine decodes each FAR
chunk as soon as it is final and the streamed frames *are* the result: nothing is decoded twice.
"""

from __future__ import annotations

import numpy as np
import torch


def _normalise(vae, mu: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(vae.config.latents_mean, device=mu.device, dtype=torch.float32).view(1, -1, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std, device=mu.device, dtype=torch.float32).view(1, -1, 1, 1, 1)
    return (mu.float() - mean) * inv_std


def _fit_images(size: int, seed: int = 0) -> torch.Tensor:
    """Synthetic single-frame images in [-1, 1]: flat colours, gradients and random colour blocks."""
    rng = np.random.default_rng(seed)
    imgs = []
    for c in rng.uniform(-1, 1, (12, 3)):
        imgs.append(np.broadcast_to(c[:, None, None], (3, size, size)))
    ramp = np.linspace(-1, 1, size)
    for ch in range(3):
        g = np.zeros((3, size, size))
        g[ch] = ramp[None, :]
        imgs.append(g)
        g = np.zeros((3, size, size))
        g[ch] = ramp[:, None]
        imgs.append(g)
    for _ in range(12):
        cells = rng.uniform(-1, 1, (3, 4, 4))
        imgs.append(np.kron(cells, np.ones((size // 4, size // 4))))
    return torch.tensor(np.stack(imgs), dtype=torch.float32)[:, :, None]  # (N, 3, 1, S, S)


@torch.no_grad()
def fit_projection(pipe, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(W (C, 3), b (3,)) such that rgb in [-1, 1] ~ latent @ W + b, for this pipeline's VAE."""
    vae = pipe.vae
    spatial = pipe.vae_scale_factor_spatial
    size = max(size, spatial * 4)
    images = _fit_images(size)
    device = next(vae.parameters()).device
    mu = torch.chunk(vae._encode(images.to(device, vae.dtype)), 2, dim=1)[0]
    latents = _normalise(vae, mu)  # (N, C, 1, h, w), as the pipeline sees them
    target = torch.nn.functional.avg_pool3d(images.to(device), (1, spatial, spatial))  # (N, 3, 1, h, w)
    x = latents.permute(0, 2, 3, 4, 1).reshape(-1, latents.shape[1])
    y = target.permute(0, 2, 3, 4, 1).reshape(-1, 3)
    x1 = torch.cat([x, torch.ones(len(x), 1, device=x.device)], dim=1)
    sol = torch.linalg.lstsq(x1.cpu(), y.cpu()).solution
    return sol[:-1].float(), sol[-1].float()


def project(latents: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """(B, T, C, h, w) normalised latents -> uint8 (T, h, w, 3) for the first video of the batch."""
    x = latents[0].float().cpu()  # (T, C, h, w)
    rgb = torch.einsum("tchw,cd->thwd", x, weight) + bias
    return ((rgb.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).numpy()


def x0_estimate(previous: torch.Tensor, current: torch.Tensor, sigma_t: float, sigma_r: float) -> torch.Tensor:
    """Clean-video estimate from one step z_t -> z_r: u = (z_t - z_r) / (sigma_t - sigma_r); x0 = z_t - sigma_t u."""
    u = (previous.float() - current.float()) / max(sigma_t - sigma_r, 1e-6)
    return previous.float() - sigma_t * u


class StreamingDecoder:
    """Decode latent frames in order, chunk by chunk, with the VAE's causal cache kept between calls."""

    def __init__(self, vae):
        self.vae = vae
        self.cache = [None] * vae._cached_conv_counts["decoder"]
        self.first = True

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """(B, t, C, h, w) normalised latents (the pipeline's layout) -> uint8 (frames, H, W, 3)."""
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        vae = self.vae
        z = latents.permute(0, 2, 1, 3, 4).to(vae.dtype)  # (B, C, t, h, w)
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(z.device, z.dtype)
        inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(z.device, z.dtype)
        z = z / inv_std + mean
        x = vae.post_quant_conv(z)
        outs = []
        for i in range(x.shape[2]):
            out = vae.decoder(x[:, :, i : i + 1], feat_cache=self.cache, feat_idx=[0], first_chunk=self.first)
            self.first = False
            outs.append(out)
        video = torch.cat(outs, 2)
        if vae.config.patch_size is not None:
            video = unpatchify(video, patch_size=vae.config.patch_size)
        video = torch.clamp(video, -1.0, 1.0)
        frames = (video[0].float() / 2 + 0.5).clamp(0, 1).permute(1, 2, 3, 0).cpu().numpy()  # (T, H, W, 3)
        return (frames * 255.0 + 0.5).astype(np.uint8)
