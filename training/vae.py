"""Stage 1: the VAE. ``python -m training.vae [--workdir runs]``

A tiny Wan VAE trained from scratch did not learn in CPU minutes (see shared/NOTES.md), but a *linear* codec
does the job on this world: PCA of 8x8 RGB patches, 16 components. "Training" the VAE is fitting that PCA
on procedural clips; the codec is then written exactly into ``AutoencoderKLWan`` weights (patch_size=8, one
level, residual and attention branches zeroed), so it loads and runs through the stock pipelines.

Two tricks make the stock (non-linear) layers exact:
- ``norm_out`` is an RMS norm ``F.normalize(x) * sqrt(C) * gamma``; ``F.normalize`` divides by
  ``max(|x|, 1e-12)``, so features kept below 1e-12 in norm (scaled by ``EPS``) pass through it linearly;
- the SiLU after it is undone by carrying each feature twice, as +y and -y: ``silu(y) - silu(-y) == y``.
Run the VAE in float32 or bfloat16 (not float16: the tiny intermediate values underflow there).

Output: ``<workdir>/vae/`` (diffusers folder) and ``<workdir>/vae/codec.npz``. No time axis compression
(``scale_factor_temporal=1``): one latent frame per video frame.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from . import data
from .common import Log, save_json, workdir

PATCH = 8
Z = 16
EPS = 1e-16  # keeps the features inside the RMS norms' eps regime (see module docstring)


def patchify(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1] -> (B, 3*64, T, H/8, W/8), channel order as in diffusers' Wan ``patchify``."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import patchify as wan_patchify

    return wan_patchify(video, PATCH)


def clips_to_tensor(clips: np.ndarray) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, H, W) in [-1, 1] (what the pipeline's video processor gives)."""
    x = torch.from_numpy(clips).float().div(127.5).sub(1.0)
    return x.permute(0, 4, 1, 2, 3).contiguous()


def fit_pca(n_clips: int = 512, seed: int = 0):
    rng = np.random.default_rng(seed)
    clips, _ = data.sample_batch(rng, n_clips, combos=data.ALL_COMBOS, variation="wide")  # every combination
    p = patchify(clips_to_tensor(clips)).double()  # (B, 192, T, h, w)
    x = p.permute(0, 2, 3, 4, 1).reshape(-1, p.shape[1])
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / xc.shape[0]
    evals, evecs = torch.linalg.eigh(cov)
    order = torch.argsort(evals, descending=True)
    comps = evecs[:, order[:Z]].T.contiguous()  # (Z, 192)
    explained = float(evals[order[:Z]].sum() / evals.sum())
    coef = xc @ comps.T
    return mean.float(), comps.float(), coef.mean(0).float(), coef.std(0).float(), explained


def build_vae(mean: torch.Tensor, comps: torch.Tensor, lat_mean: torch.Tensor, lat_std: torch.Tensor):
    from diffusers import AutoencoderKLWan

    c_in = comps.shape[1]
    vae = AutoencoderKLWan(
        base_dim=2 * Z,
        z_dim=Z,
        dim_mult=[1],
        num_res_blocks=0,
        temperal_downsample=[False],
        in_channels=c_in,
        out_channels=c_in,
        patch_size=PATCH,
        scale_factor_temporal=1,
        scale_factor_spatial=PATCH,
        latents_mean=[float(v) for v in lat_mean],
        latents_std=[float(v) for v in lat_std],
    )
    with torch.no_grad():
        for prm in vae.parameters():
            prm.zero_()
        # RMS-norm gains: every WanRMS_norm gets 1; norm_out gets the gain that undoes the eps regime.
        for mod in vae.modules():
            if mod.__class__.__name__ == "WanRMS_norm":
                mod.gamma.fill_(1.0)
        dim = 2 * Z
        unscale = 1.0 / (EPS * 1e12 * dim**0.5)
        vae.encoder.norm_out.gamma.fill_(unscale)
        vae.decoder.norm_out.gamma.fill_(unscale)
        pm = torch.cat([comps, -comps], 0)  # (2Z, 192): +y, -y
        enc = vae.encoder
        enc.conv_in.weight[:, :, 2, 1, 1] = EPS * pm
        enc.conv_in.bias[:] = -EPS * (pm @ mean)
        eye = torch.eye(Z)
        enc.conv_out.weight[:Z, :, 2, 1, 1] = torch.cat([eye, -eye], 1)  # mu = silu(y) - silu(-y)
        enc.conv_out.bias[Z:] = -20.0  # logvar: a (nearly) deterministic posterior
        vae.quant_conv.weight[:, :, 0, 0, 0] = torch.eye(2 * Z)
        vae.post_quant_conv.weight[:, :, 0, 0, 0] = eye
        dec = vae.decoder
        dec.conv_in.weight[:, :, 2, 1, 1] = EPS * torch.cat([eye, -eye], 0)
        dec.conv_out.weight[:, :, 2, 1, 1] = torch.cat([comps.T, -comps.T], 1)
        dec.conv_out.bias[:] = mean
    return vae


class Codec:
    """The same linear codec as the VAE, as plain torch ops (fast path for training and tests)."""

    def __init__(self, mean, comps, lat_mean, lat_std):
        self.mean, self.comps, self.lat_mean, self.lat_std = mean, comps, lat_mean, lat_std

    @classmethod
    def load(cls, path):
        z = np.load(path)
        return cls(*(torch.from_numpy(z[k]) for k in ("mean", "comps", "lat_mean", "lat_std")))

    def encode(self, clips: np.ndarray) -> torch.Tensor:
        """uint8 (B, T, H, W, 3) -> normalised latents in the AnyFlow layout (B, T, Z, h, w)."""
        p = patchify(clips_to_tensor(clips))  # (B, 192, T, h, w)
        y = torch.einsum("bctij,zc->btzij", p - self.mean.view(1, -1, 1, 1, 1), self.comps)
        return (y - self.lat_mean.view(1, 1, -1, 1, 1)) / self.lat_std.view(1, 1, -1, 1, 1)

    def decode(self, lat: torch.Tensor) -> np.ndarray:
        """(B, T, Z, h, w) normalised latents -> uint8 (B, T, H, W, 3)."""
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        y = lat * self.lat_std.view(1, 1, -1, 1, 1) + self.lat_mean.view(1, 1, -1, 1, 1)
        p = torch.einsum("btzij,zc->bctij", y, self.comps) + self.mean.view(1, -1, 1, 1, 1)
        x = unpatchify(p, PATCH).clamp(-1, 1)  # (B, 3, T, H, W)
        return ((x.permute(0, 2, 3, 4, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--clips", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    out = workdir(args.workdir) / "vae"
    log = Log(out / "log.txt")
    t0 = time.time()
    mean, comps, lat_mean, lat_std = None, None, None, None
    mean, comps, lat_mean, lat_std, explained = fit_pca(args.clips, args.seed)
    log(f"PCA of {PATCH}x{PATCH} patches from {args.clips} clips: {Z} components, {explained * 100:.2f}% variance")
    np.savez(out / "codec.npz", mean=mean.numpy(), comps=comps.numpy(), lat_mean=lat_mean.numpy(),
             lat_std=lat_std.numpy())
    vae = build_vae(mean, comps, lat_mean, lat_std)
    vae.save_pretrained(out)
    # Check: the stock AutoencoderKLWan reproduces the codec, and the codec reconstructs held-out clips.
    codec = Codec(mean, comps, lat_mean, lat_std)
    rng = np.random.default_rng(args.seed + 99)
    clips, _ = data.sample_batch(rng, 8, combos=data.ALL_COMBOS, variation="wide")
    with torch.no_grad():
        x = clips_to_tensor(clips)
        mu = vae.encode(x).latent_dist.mode()
        lat = codec.encode(clips)
        lat_vae = (mu - lat_mean.view(1, -1, 1, 1, 1)) / lat_std.view(1, -1, 1, 1, 1)
        err_enc = float((lat_vae.permute(0, 2, 1, 3, 4) - lat).abs().max())
        rec = vae.decode(mu).sample
        rec_u8 = ((rec.permute(0, 2, 3, 4, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).numpy()
        err_dec = int(np.abs(rec_u8.astype(int) - codec.decode(lat).astype(int)).max())
    p = psnr(rec_u8, clips)
    n_params = sum(q.numel() for q in vae.parameters())
    log(f"AutoencoderKLWan vs codec: max latent err {err_enc:.2e}, max pixel err {err_dec}; PSNR {p:.2f} dB; "
        f"{n_params} params; {time.time() - t0:.1f}s")
    save_json(out / "done.json", {"psnr_db": p, "explained": explained, "seconds": time.time() - t0,
                                  "params": n_params})


if __name__ == "__main__":
    main()
