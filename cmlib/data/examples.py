"""One cluster through the thesis's data preparation, step by step (the book's Fig. 21)."""
from __future__ import annotations


import numpy as np

from ..errors import InputError
from .bands import normalise_bands
from .io import ClusterData
from .transforms import THESIS_PAD_SIZE, flip_lr, flip_ud, pad_images

# =========================================================================== the book's Fig. 21

def pipeline_example(data_or_images, index: int = 0, *, bands="thesis", pad: str = "thesis",
                     pad_size: int = THESIS_PAD_SIZE, flip: str = "lr") -> list[dict]:
    """One cluster through each step of the thesis's data preparation (thesis Fig. 21).

    Parameters
    ----------
    data_or_images : ClusterData or ndarray (N, 50, 50, 10)
        Loaded with all bands.
    index : int
        Which cluster.
    bands : str or sequence of int
        Band selection (default the thesis's 2-4).
    pad : {"thesis", "center", "none"}
    flip : {"lr", "ud"}
        The flip shown in the last step.

    Returns
    -------
    list of dict
        One per step, with ``step``, ``array`` (H, W, C), ``shape`` (the
        thesis's (samples, x, y, frequencies) label) and ``note``.  The
        flipped step is done the cmlib way (flip the 50 x 50 image, then pad:
        the cluster stays top-left); a fifth step shows flipping after
        padding, which moves the cluster to another corner.
    """
    if isinstance(data_or_images, ClusterData):
        images, loaded = data_or_images.images, data_or_images.bands
        n_file_bands = data_or_images.band_edges_ev.size - 1
    else:
        images = np.asarray(data_or_images)
        loaded = tuple(range(images.shape[-1]))
        n_file_bands = images.shape[-1]
    if images.ndim != 4:
        raise InputError(f"pipeline_example expects (N, H, W, C) images or ClusterData; got shape {images.shape}")
    n = images.shape[0]
    if not -n <= index < n:
        raise InputError(f"cluster index {index} out of range for {n} clusters")
    if flip not in ("lr", "ud"):
        raise InputError(f"flip must be 'lr' or 'ud', got '{flip}'")
    want = normalise_bands(bands, n_file_bands)
    missing = [b + 1 for b in want if b not in loaded]
    if missing:
        raise InputError(f"bands {missing} (1-based) are not in the data; load all bands for this figure")
    raw = images[index]
    sel = raw[..., [loaded.index(b) for b in want]]
    padded = pad_images(sel, pad, pad_size)
    op = flip_lr if flip == "lr" else flip_ud
    flipped = pad_images(op(sel[None])[0], pad, pad_size)
    flipped_after = op(padded[None])[0]
    label = ", ".join(str(b + 1) for b in want)

    def shape(a: np.ndarray) -> str:
        return f"({n}, {a.shape[0]}, {a.shape[1]}, {a.shape[2]})"

    return [
        {"step": "raw", "array": raw, "shape": shape(raw), "note": f"all {raw.shape[-1]} bands"},
        {"step": "bands", "array": sel, "shape": shape(sel), "note": f"bands {label} selected"},
        {"step": "padded", "array": padded, "shape": shape(padded),
         "note": f"padded to {padded.shape[0]}x{padded.shape[1]} ({pad})"},
        {"step": "flipped", "array": flipped, "shape": shape(flipped),
         "note": f"flip {flip} of the 50x50 image, then pad (cmlib: the cluster stays in place)"},
        {"step": "flipped-after-padding", "array": flipped_after, "shape": shape(flipped_after),
         "note": f"flip {flip} after padding: the cluster moves to another corner"},
    ]
