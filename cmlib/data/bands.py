"""Photon-energy bands: names, 1-based numbers on the command line, 0-based indices in code."""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from .. import schema
from ..errors import InputError

# =========================================================================== bands

def parse_bands(spec: str | int, n_bands: int = schema.N_BANDS) -> tuple[int, ...]:
    """Parse a band specification into zero-based band indices.

    Parameters
    ----------
    spec : str or int
        ``"thesis"`` (bands 2-4, 455-1070 eV, thesis Sect. 3.2), ``"all"``,
        a 1-based comma list ``"2,3,4"``, ranges ``"1-10"`` or ``"1-3,7"``,
        or a single 1-based band number.  Band numbers are those of thesis
        Table 1, as the book and the command line speak them.
    n_bands : int
        Number of bands in the data (10 for the thesis data).

    Returns
    -------
    tuple of int
        Zero-based indices in the order given, e.g. ``"2,3,4"`` -> ``(1, 2, 3)``.

    Raises
    ------
    InputError
        For band numbers outside 1..n_bands (0 included), duplicates, empty
        or malformed specifications.
    """
    if isinstance(spec, (bool, np.bool_)):
        raise InputError(f"invalid band specification {spec!r}: use 'thesis', 'all' or numbers such as '2,3,4'")
    if isinstance(spec, (int, np.integer)):
        spec = str(int(spec))
    if not isinstance(spec, str):
        raise InputError(
            f"invalid band specification {spec!r} ({type(spec).__name__}): use a string such as "
            "'thesis', 'all', '2,3,4' or '1-10' (1-based band numbers of thesis Table 1)")
    text = spec.strip().lower()
    if text == "thesis":
        if n_bands < max(schema.THESIS_BANDS) + 1:
            raise InputError(f"bands='thesis' (bands 2-4) needs at least 4 bands; the data has {n_bands}")
        return tuple(schema.THESIS_BANDS)
    if text == "all":
        return tuple(range(n_bands))
    out: list[int] = []
    hint = (f"use 1-based band numbers 1-{n_bands} of thesis Table 1, e.g. '2,3,4', '1-10', "
            "'thesis' or 'all'")
    if not text:
        raise InputError(f"empty band specification: {hint}")
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise InputError(f"invalid band range '{part}' in '{spec}': the range runs backwards; "
                                 f"write it as '{hi}-{lo}'")
            numbers = list(range(lo, hi + 1))
        elif re.fullmatch(r"\d+", part):
            numbers = [int(part)]
        else:
            raise InputError(f"invalid band specification '{spec}' ('{part}' is not a number): {hint}")
        for b in numbers:
            if not 1 <= b <= n_bands:
                raise InputError(f"band {b} in '{spec}' does not exist: bands are numbered 1-{n_bands} "
                                 f"(1-based, thesis Table 1); {hint}")
            if b - 1 in out:
                raise InputError(f"band {b} appears twice in '{spec}': list each band once")
            out.append(b - 1)
    return tuple(out)


def normalise_bands(bands, n_bands: int, what: str = "bands") -> tuple[int, ...]:
    """``None`` -> all; str/int -> :func:`parse_bands` (1-based); sequence -> zero-based, checked."""
    if bands is None:
        return tuple(range(n_bands))
    if isinstance(bands, (str, int, np.integer)) and not isinstance(bands, bool):
        return parse_bands(bands, n_bands)
    try:
        idx = tuple(int(b) for b in bands)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a band specification string ('thesis', '2,3,4') or a sequence "
                         f"of zero-based band indices, got {bands!r}") from None
    if not idx:
        raise InputError(f"{what} is empty: select at least one band")
    bad = [b for b in idx if not 0 <= b < n_bands]
    if bad:
        raise InputError(f"{what} {idx} holds zero-based indices {bad} outside 0..{n_bands - 1}; "
                         "zero-based sequences index the data's bands (use a string such as '2,3,4' "
                         "for 1-based band numbers)")
    if len(set(idx)) != len(idx):
        raise InputError(f"{what} {idx} lists a band twice: list each band once")
    return idx


def select_bands(images: np.ndarray, bands: Sequence[int]) -> np.ndarray:
    """Channels ``bands`` (zero-based, in that order) of ``(..., H, W, C)`` images, as a new array."""
    images = np.asarray(images)
    if images.ndim < 3:
        raise InputError(f"select_bands expects images (..., H, W, C); got shape {images.shape}")
    idx = normalise_bands(bands, images.shape[-1])
    if idx == tuple(range(images.shape[-1])):
        return images.copy()
    return np.ascontiguousarray(images[..., list(idx)])
