"""Image transforms: padding (thesis Fig. 20), flips and rotations (Fig. 21), intensity scaling."""
from __future__ import annotations

import typing
from typing import Mapping

import numpy as np

from ..recipe import Augment, Pad, Scaling
from ..errors import InputError
from .io import READ_BLOCK

#: Padded image size of the thesis's deep models (thesis Sect. 3.2, Fig. 20).
THESIS_PAD_SIZE = 71
#: The option vocabularies, from the typed configuration (:mod:`cmlib.config`).
PAD_MODES = typing.get_args(Pad)
AUGMENT_MODES = typing.get_args(Augment)
SCALING_MODES = typing.get_args(Scaling)

# =========================================================================== padding

def _pad_widths(mode: str, height: int, width: int, size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    if mode not in PAD_MODES:
        raise InputError(f"unknown padding mode '{mode}': choose one of {', '.join(PAD_MODES)}")
    if mode == "none":
        return (0, 0), (0, 0)
    if size < max(height, width):
        raise InputError(f"cannot pad {height}x{width} images to {size}x{size}: size must be at least "
                         f"{max(height, width)} (the thesis pads 50 -> 71)")
    dh, dw = size - height, size - width
    if mode == "thesis":
        # Thesis Sect. 3.2, Figs. 20-21: 21 px of zeros appended at the bottom and the right;
        # the cluster stays in the top-left 50 x 50 corner.
        return (0, dh), (0, dw)
    # centred: 10 px before, 11 px after for 50 -> 71
    return (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)


def pad_images(images: np.ndarray, mode: str = "thesis", size: int = THESIS_PAD_SIZE) -> np.ndarray:
    """Pad ``(H, W, C)`` or ``(N, H, W, C)`` images with zeros to ``size x size``.

    Parameters
    ----------
    images : ndarray
        One image (H, W, C) or a batch (N, H, W, C).
    mode : {"thesis", "center", "none"}
        ``"thesis"``: zeros appended at the bottom and right (thesis Fig. 20;
        the cluster stays top-left); ``"center"``: centred (10 px before and
        11 px after for 50 -> 71); ``"none"``: the images unchanged.
    size : int
        Output height and width (71 in the thesis).
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise InputError(f"pad_images expects (H, W, C) or (N, H, W, C) images; got shape {images.shape}")
    h, w = images.shape[-3], images.shape[-2]
    (top, bottom), (left, right) = _pad_widths(mode, h, w, size)
    if mode == "none":
        return images
    out = np.zeros(images.shape[:-3] + (h + top + bottom, w + left + right, images.shape[-1]),
                   dtype=images.dtype)
    out[..., top:top + h, left:left + w, :] = images
    return out


# =========================================================================== augmentation

def _check_nhwc(images: np.ndarray, what: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4:
        raise InputError(f"{what} expects an NHWC batch (N, H, W, C); got shape {images.shape}")
    return images


def flip_lr(images: np.ndarray) -> np.ndarray:
    """Mirror an NHWC batch left-right (reverse the width axis); returns a new array."""
    return np.ascontiguousarray(_check_nhwc(images, "flip_lr")[:, :, ::-1, :])


def flip_ud(images: np.ndarray) -> np.ndarray:
    """Mirror an NHWC batch up-down (reverse the height axis); returns a new array."""
    return np.ascontiguousarray(_check_nhwc(images, "flip_ud")[:, ::-1, :, :])


def rot90(images: np.ndarray, k: int = 1) -> np.ndarray:
    """Rotate an NHWC batch by ``k`` x 90 degrees counter-clockwise (``np.rot90`` on axes 1, 2)."""
    images = _check_nhwc(images, "rot90")
    if int(k) % 4 and images.shape[1] != images.shape[2]:
        raise InputError(f"rot90 needs square images; got {images.shape[1]}x{images.shape[2]}")
    return np.ascontiguousarray(np.rot90(images, int(k) % 4, axes=(1, 2)))


def augment_batch(images: np.ndarray, flip_lr_mask, flip_ud_mask, rot_k) -> np.ndarray:
    """Per-image augmentation of an NHWC batch, vectorised over the batch.

    Image ``i`` is flipped left-right if ``flip_lr_mask[i]``, then up-down if
    ``flip_ud_mask[i]``, then rotated by ``rot_k[i]`` x 90 degrees.  This is
    the definition of the augmentation: the fast input paths
    (:class:`ArrayBatches`, :func:`tf_dataset`) read precomputed copies whose
    layout is derived from this function (:func:`_store_layout`), and the
    tests check them against it batch by batch.
    """
    x = _check_nhwc(images, "augment_batch")
    lr = np.asarray(flip_lr_mask, dtype=bool)
    ud = np.asarray(flip_ud_mask, dtype=bool)
    rk = np.asarray(rot_k, dtype=np.int64) % 4
    if not (len(lr) == len(ud) == len(rk) == len(x)):
        raise InputError(f"augment_batch: {len(x)} images but masks of lengths {len(lr)}, {len(ud)}, {len(rk)}")
    x = np.where(lr[:, None, None, None], x[:, :, ::-1, :], x)
    x = np.where(ud[:, None, None, None], x[:, ::-1, :, :], x)
    if rk.any():
        if x.shape[1] != x.shape[2]:
            raise InputError(f"90-degree rotations need square images; got {x.shape[1]}x{x.shape[2]}")
        out = x.copy()
        for k in (1, 2, 3):
            sel = rk == k
            if sel.any():
                out[sel] = np.rot90(x[sel], k, axes=(1, 2))
        x = out
    return np.ascontiguousarray(x)






# =========================================================================== scaling

class Scaler:
    """Intensity scaling of the images, fitted on the training split only.

    Modes
    -----
    ``"raw"``
        Photon counts as they are (the thesis).
    ``"log1p"``
        ``log(1 + counts)``: compresses the bright cores (no parameters).
    ``"standardize"``
        ``(counts - mean_b) / std_b`` per band b, with mean and standard
        deviation over all training pixels.  A band with no spread in the
        training data keeps std 1 (recorded in ``degenerate_bands``).
    """

    def __init__(self, mode: str = "raw") -> None:
        if mode not in SCALING_MODES:
            raise InputError(f"unknown scaling '{mode}': choose one of {', '.join(SCALING_MODES)}")
        self.mode = mode
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.degenerate_bands: list[int] = []
        self.fitted = mode != "standardize"

    def fit(self, train_images: np.ndarray, block: int = READ_BLOCK) -> "Scaler":
        """Fit on training images (N, H, W, C); streams in blocks (float64 sums)."""
        x = np.asarray(train_images)
        if x.ndim != 4 or x.shape[0] < 1:
            raise InputError(f"Scaler.fit expects a non-empty (N, H, W, C) array, got shape {x.shape}")
        if self.mode == "standardize":
            c = x.shape[-1]
            s1 = np.zeros(c, np.float64)
            count = 0
            for i in range(0, x.shape[0], block):
                b = x[i:i + block]
                s1 += b.sum(axis=(0, 1, 2), dtype=np.float64)
                count += b.shape[0] * b.shape[1] * b.shape[2]
            mean = s1 / count
            s2 = np.zeros(c, np.float64)
            for i in range(0, x.shape[0], block):
                d = x[i:i + block].astype(np.float64) - mean
                s2 += np.einsum("nhwc,nhwc->c", d, d)
            std = np.sqrt(s2 / count)
            self.degenerate_bands = [int(i) for i in np.flatnonzero(~(std > 0))]
            std[~(std > 0)] = 1.0
            self.mean, self.std = mean, std
        self.fitted = True
        return self

    def transform(self, images: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Scaled float32 copy of ``images`` (or in place into ``out``, e.g. ``out=images``)."""
        if not self.fitted:
            raise InputError("Scaler('standardize') must be fitted on the training images before transform")
        x = np.asarray(images)
        if out is None:
            out = np.array(x, dtype=np.float32, copy=True)
        elif out is not x:
            out[...] = x
        if self.mode == "log1p":
            np.log1p(out, out=out)
        elif self.mode == "standardize":
            if out.shape[-1] != self.mean.size:
                raise InputError(f"Scaler was fitted on {self.mean.size} bands, images have {out.shape[-1]}")
            out -= self.mean.astype(np.float32)
            out /= self.std.astype(np.float32)
        return out

    def to_dict(self) -> dict:
        return {"mode": self.mode, "mean": None if self.mean is None else self.mean.tolist(),
                "std": None if self.std is None else self.std.tolist(),
                "degenerate_bands": list(self.degenerate_bands)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Scaler":
        s = cls(d.get("mode", "raw"))
        if s.mode == "standardize":
            if d.get("mean") is None or d.get("std") is None:
                raise InputError("a 'standardize' scaler record needs 'mean' and 'std'; re-fit the scaler")
            s.mean = np.asarray(d["mean"], np.float64)
            s.std = np.asarray(d["std"], np.float64)
            s.degenerate_bands = list(d.get("degenerate_bands", []))
            s.fitted = True
        return s

    def __repr__(self) -> str:
        if self.mode == "standardize" and self.fitted:
            return f"Scaler('standardize', mean={np.round(self.mean, 4).tolist()}, std={np.round(self.std, 4).tolist()})"
        return f"Scaler('{self.mode}')"
