"""Catalogues in memory and HDF5 data files: the public entry points of the mock.

:func:`simulate` keeps a catalogue in memory (book, tests); :func:`simulate_to_file`
streams any size to a cmlib HDF5 file, atomically: the file appears only when
complete, a second writer to the same path is refused, a kill leaves no
partial file that a later run does not remove, SIGTERM cleans up like Ctrl-C,
a full disk gives a clear error, and render workers die with their parent.
"""
from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..schema import IMAGE_SIZE, N_BANDS
from .params import SimulationParams
from .population import (MAX_CLUSTERS, MAX_IN_MEMORY, MORPHOLOGY_CODES, check_n, check_seed,
                         draw_population)
from .render import _render_setup, render_images


def _band_cols(prefix: str, unit: str, what: str) -> dict[str, tuple[str, str, str]]:
    from ..schema import BAND_EDGES_EV

    return {f"{prefix}_band{b + 1}": ("f8", unit, f"{what}, band {b + 1} "
                                      f"({BAND_EDGES_EV[b]:.0f}-{BAND_EDGES_EV[b + 1]:.0f} eV)")
            for b in range(N_BANDS)}


#: Catalogue columns: name -> (dtype, unit, description).
CATALOG_COLUMNS: dict[str, tuple[str, str, str]] = {
    "cluster_id": ("i8", "", "unique id: serial number of the halo in the seed's candidate stream"),
    "M500c": ("f8", "Msun", "true mass inside R500c"),
    "log_m500": ("f8", "log10 Msun", "log10(M500c / Msun), the label"),
    "z": ("f8", "", "redshift"),
    "E_z": ("f8", "", "E(z) = H(z)/H0"),
    "D_A_Mpc": ("f8", "Mpc", "angular-diameter distance"),
    "D_L_Mpc": ("f8", "Mpc", "luminosity distance"),
    "R500_kpc": ("f8", "kpc", "R500c"),
    "R500_arcmin": ("f8", "arcmin", "theta500 = R500 / D_A"),
    "kT": ("f8", "keV", "ICM temperature (isothermal)"),
    "Z_metal": ("f8", "Zsun", "ICM metallicity"),
    "L_X_500": ("f8", "erg/s", "luminosity 0.5-2 keV rest frame inside projected R500"),
    "flux_0p5_2": ("f8", "erg/s/cm^2", "observed-frame 0.5-2 keV flux inside R500, unabsorbed"),
    "flux_aperture": ("f8", "erg/s/cm^2", "0.5-2 keV flux inside the selection aperture, unabsorbed"),
    "selection_probability": ("f8", "", "probability that the survey selects this cluster (1 if selection off)"),
    "exposure_s": ("f8", "s", "vignetting-corrected exposure"),
    "nH": ("f8", "cm^-2", "Galactic hydrogen column density"),
    **_band_cols("expected_counts", "counts", "expected source photons of the whole model (< truncation radius)"),
    "expected_counts_r500": ("f8", "counts", "expected source photons inside projected R500, all bands"),
    **_band_cols("observed_counts", "counts", "source photons drawn that land in the 50x50 image"),
    "source_counts_outside_image": ("f8", "counts", "source photons drawn that fall outside the image"),
    **_band_cols("background_counts", "counts", "sky + particle background photons in the 50x50 image"),
    "morphology": ("i1", "", "0 = non-cool-core, 1 = cool-core, 2 = disturbed"),
    "r_core_kpc": ("f8", "kpc", "core radius of the main beta-model component"),
    "r_core_arcmin": ("f8", "arcmin", "core radius of the main component"),
    "beta": ("f8", "", "beta of the beta-model"),
    "axis_ratio": ("f8", "", "minor/major axis ratio q"),
    "ellipticity": ("f8", "", "1 - q"),
    "position_angle": ("f8", "deg", "major-axis angle from the +x (column) axis towards +y (row index)"),
    "cc_core_fraction": ("f8", "", "share of the R500 flux in the compact cool-core component"),
    "subclump_fraction": ("f8", "", "share of the R500 flux in the sub-clump (disturbed)"),
    "subclump_offset_r500": ("f8", "R500", "distance of the sub-clump from the centre"),
    "center_offset_x_arcmin": ("f8", "arcmin", "emission centre minus image centre, x"),
    "center_offset_y_arcmin": ("f8", "arcmin", "emission centre minus image centre, y"),
    "n_agn": ("i4", "", "field AGN (flux > agn_flux_min) inside the image"),
    "central_agn": ("i1", "", "1 if the cluster hosts a bright central AGN"),
    "central_agn_flux": ("f8", "erg/s/cm^2", "0.5-2 keV flux of the central AGN (0 if none)"),
    "agn_counts": ("f8", "counts", "AGN photons (field + central) in the image, all bands"),
    "delta_lnL": ("f8", "", "ln(L_X / median L_X(M, z)): drawn scatter incl. the cool-core offset"),
    "delta_lnL_morph": ("f8", "", "cool-core / non-cool-core part of delta_lnL"),
    "delta_lnT": ("f8", "", "ln(kT / median kT(M, z)): drawn scatter"),
}

#: Extra catalogue columns of physics v2 (the v1 column set is unchanged).
CATALOG_COLUMNS_V2: dict[str, tuple[str, str, str]] = {
    **CATALOG_COLUMNS,
    "flux_aperture": ("f8", "erg/s/cm^2", "0.5-2 keV flux inside the 60\" detection cell, unabsorbed"),
    "selection_probability": ("f8", "", "1 if the eSASS-like selection kept the cluster (always 1 in a file)"),
    "central_agn": ("i1", "", "1 if the cluster's central galaxy hosts an AGN (any luminosity)"),
    "central_agn_lx": ("f8", "erg/s", "0.5-2 keV luminosity of the central AGN (0 if none)"),
    "det_like": ("f8", "", "detection likelihood of the eSASS-like test (DET_LIKE)"),
    "ext_like": ("f8", "", "extent likelihood of the eSASS-like test (EXT_LIKE)"),
    "source_photons": ("i8", "", "cluster photons drawn (all bands, whole model): the image shows these"),
    "position_error_arcsec": ("f8", "arcsec", "1-sigma error per axis of the detected position"),
    "vignetting_ratio": ("f8", "", "vignetted / unvignetted exposure of the field"),
    "exposure_unvignetted_s": ("f8", "s", "unvignetted exposure (particle background)"),
    "sky_level": ("f8", "", "sky background level of the field / nominal"),
    "particle_level": ("f8", "", "particle background rate of the field / nominal"),
}
CATALOG_COLUMNS_V2["center_offset_x_arcmin"] = ("f8", "arcmin", "emission centre minus image (detected) centre, x")
CATALOG_COLUMNS_V2["center_offset_y_arcmin"] = ("f8", "arcmin", "emission centre minus image (detected) centre, y")
CATALOG_COLUMNS_V2["background_counts_band1"] = CATALOG_COLUMNS["background_counts_band1"]


def catalog_columns(params: SimulationParams | None = None) -> dict[str, tuple[str, str, str]]:
    """The catalogue columns of files made with ``params``: name -> (dtype, unit, description)."""
    p = params or SimulationParams()
    return CATALOG_COLUMNS_V2 if p.physics == "v2" else CATALOG_COLUMNS



# --------------------------------------------------------------------------- catalogues

@dataclass
class SimulatedCatalog:
    """A simulated catalogue held in memory (see :func:`simulate`)."""

    images: np.ndarray
    log_m500: np.ndarray
    z: np.ndarray
    cluster_id: np.ndarray
    catalog: dict[str, np.ndarray]
    params: SimulationParams
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def expected_counts(self) -> np.ndarray:
        """Expected source counts per band, (n, 10) (the ``expected_counts_band*`` columns)."""
        return np.stack([self.catalog[f"expected_counts_band{b + 1}"] for b in range(N_BANDS)], axis=1)

    @property
    def observed_counts(self) -> np.ndarray:
        """Source photons drawn inside the image per band, (n, 10)."""
        return np.stack([self.catalog[f"observed_counts_band{b + 1}"] for b in range(N_BANDS)], axis=1)

    @property
    def background_counts(self) -> np.ndarray:
        """Background photons in the image per band, (n, 10)."""
        return np.stack([self.catalog[f"background_counts_band{b + 1}"] for b in range(N_BANDS)], axis=1)

    def __len__(self) -> int:
        return int(self.z.size)


def _catalog_from(pop: dict, extras: dict, sl: slice, columns=None) -> dict[str, np.ndarray]:
    out = {}
    for name, (dtype, _, _) in (columns or CATALOG_COLUMNS).items():
        src = extras[name] if name in extras else pop[name][sl]
        out[name] = np.asarray(src).astype(dtype)
    return out


def simulate(n: int, seed: int = 0, params: SimulationParams | None = None) -> SimulatedCatalog:
    """Simulate ``n`` clusters in memory (for the book and tests; n <= 20 000).

    Returns a :class:`SimulatedCatalog` with ``images`` (n, 50, 50, 10)
    float32, ``log_m500``, ``z``, ``cluster_id`` and the full ``catalog``.
    Identical to the first ``n`` clusters of :func:`simulate_to_file` with the
    same seed and parameters.
    """
    n = check_n(n, MAX_IN_MEMORY, "; use simulate_to_file() for large catalogues")
    seed = check_seed(seed)
    p = params or SimulationParams()
    if not isinstance(p, SimulationParams):
        raise InputError(f"params must be a SimulationParams, got {type(p).__name__}")
    pop = draw_population(n, seed, p)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, N_BANDS), dtype=np.float32)
    parts = []
    step = 1024
    for s in range(0, n, step):
        e = min(n, s + step)
        img, extras = render_images(pop, s, e, seed, p)
        images[s:e] = img
        parts.append(extras)
    extras_all = {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}
    cat = _catalog_from(pop, extras_all, slice(0, n), catalog_columns(p))
    return SimulatedCatalog(images=images, log_m500=cat["log_m500"].copy(), z=cat["z"].copy(),
                            cluster_id=cat["cluster_id"].copy(), catalog=cat, params=p, seed=seed,
                            meta=dict(pop["_meta"]))


def _file_attrs(p: SimulationParams, seed: int, meta: dict) -> dict[str, Any]:
    from .._io import to_json

    return {
        "seed": seed,
        "generator": "cmlib.simulate",
        "generator_params": to_json(p.to_dict()),
        "physics_version": p.physics_version,
        "pixel_scale_arcsec": float(p.pixel_scale_arcsec),
        "morphology_codes": json.dumps({str(k): v for k, v in MORPHOLOGY_CODES.items()}),
        "candidates_drawn": int(meta["candidates_drawn"]),
        "expected_selected_in_survey": float(meta["expected_selected_in_survey"]),
        "survey_area_deg2": float(p.survey_area_deg2),
    }


def _render_task(pop_slice: dict, seed: int, params: SimulationParams) -> tuple[np.ndarray, dict]:
    """Worker-process entry point: render one chunk given its slice of the population."""
    m = pop_slice["z"].size
    return render_images(pop_slice, 0, m, seed, params)


def _worker_init(parent: int) -> None:
    """Render workers die with their parent (Linux PR_SET_PDEATHSIG) and leave Ctrl-C and SIGTERM to it.

    A worker must not die while it sends a result: the pool's manager thread would wait forever
    for the rest of the message and the parent could not shut the pool down (seen when a worker
    was killed on SIGTERM).  So workers ignore both signals (also when Slurm or a terminal signals
    the whole process group); the parent stops them after their current chunk.
    """
    import os

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)     # a forked worker inherits the parent's handler
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)   # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:         # the parent died before the line above ran
        os._exit(1)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, Slurm, ``kill``) received: handled like Ctrl-C, partial files are removed."""


def _raise_terminated(signum, frame):   # noqa: ARG001 - signal handler signature
    raise Terminated(f"terminated by signal {signum}")


def _pool_context():
    """``fork`` where it is safe (POSIX, no Python threads, no DL backend loaded), else ``spawn``."""
    import multiprocessing
    import os
    import threading

    heavy = any(m in sys.modules for m in ("tensorflow", "jax", "torch"))
    if os.name == "posix" and threading.active_count() == 1 and not heavy \
            and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _chunks(n: int, chunk_size: int):
    for s in range(0, n, chunk_size):
        yield s, min(n, s + chunk_size)


def _prepare_worker(params: SimulationParams) -> bool:
    """First task of a render worker: builds its caches (and makes the pool start its process now)."""
    _render_setup(params)
    return True


def _iter_rendered(pop: dict, n: int, seed: int, p: SimulationParams, chunk_size: int, pool=None,
                   workers: int = 0):
    """Yield (start, stop, images, extras) in order; with a process ``pool`` rendering runs ahead.

    With a pool the next chunks are rendered while the caller writes the
    current one (rendering is numpy-bound and holds the GIL for long
    stretches, so threads would overlap little).  Results are identical
    either way (per-cluster random streams).
    If the pool breaks (e.g. a script without ``if __name__ == "__main__"``
    under the spawn method), rendering falls back to this process.
    """
    from collections import deque
    from concurrent.futures.process import BrokenProcessPool

    chunks = list(_chunks(n, chunk_size))
    keys = [k for k in pop if k != "_meta"]
    pending: deque = deque()
    nxt = done = 0
    while done < len(chunks):
        if pool is not None:
            try:
                while nxt < len(chunks) and len(pending) < workers + 1:
                    s, e = chunks[nxt]
                    pending.append(pool.submit(_render_task, {k: pop[k][s:e] for k in keys}, seed, p))
                    nxt += 1
                img, extras = pending.popleft().result()
            except BrokenProcessPool:
                pool, pending = None, deque()
                continue
        else:
            img, extras = render_images(pop, chunks[done][0], chunks[done][1], seed, p)
        s, e = chunks[done]
        done += 1
        yield s, e, img, extras


def _default_workers(n: int, chunk_size: int) -> int:
    import os

    return 1 if (os.cpu_count() or 1) >= 2 and n > chunk_size else 0


def simulate_to_file(path, n: int, seed: int = 0, params: SimulationParams | None = None,
                     overwrite: bool = False, chunk_size: int = 1024, progress: bool = True,
                     workers: int | None = None) -> Path:
    """Simulate ``n`` clusters into a cmlib HDF5 data file (streamed, atomic).

    The population (scalars) is drawn for all ``n`` first; images are then
    rendered and written ``chunk_size`` clusters at a time, so memory stays
    bounded (~0.5 GB for chunk_size 1024) for any n up to 1 000 000.  The file
    appears only when complete.  Root attributes add ``seed``,
    ``generator_params`` (JSON), ``generator`` and ``physics_version``.

    ``workers`` worker processes render the next chunks while this process
    compresses and writes (default: 1 on a machine with >= 2 cores and more
    than one chunk, else 0 = all in this process).  The file is byte-identical
    for any ``workers`` (and, for the same ``chunk_size``, any run).

    Raises :class:`InputError` for a bad ``n``, ``seed``, ``chunk_size`` or
    ``workers`` or an unwritable path, and :class:`cmlib.errors.OutputExistsError`
    if ``path`` exists and ``overwrite`` is false - both before any work is done.
    """
    import threading

    from .._io import output_lock, prepare_output, remove_stale_temporaries
    from ..schema import DataFileWriter

    n = check_n(n, MAX_CLUSTERS)
    seed = check_seed(seed)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    chunk_size = int(chunk_size)
    if workers is None:
        workers = _default_workers(n, chunk_size)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or not 0 <= workers <= 64:
        raise InputError(f"workers must be an integer in [0, 64], got {workers!r}")
    p = params or SimulationParams()
    if not isinstance(p, SimulationParams):
        raise InputError(f"params must be a SimulationParams, got {type(p).__name__}")
    path = prepare_output(path, overwrite=overwrite, what="data file")
    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        with output_lock(path, "data file"):
            removed = remove_stale_temporaries(path)
            if removed and progress:
                print(f"cmlib simulate: removed {len(removed)} temporary file(s) of an earlier, killed run",
                      file=sys.stderr, flush=True)
            return _simulate_locked(path, n, seed, p, overwrite, chunk_size, progress, int(workers), DataFileWriter)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old_term)


def _simulate_locked(path, n, seed, p, overwrite, chunk_size, progress, workers, writer_cls) -> Path:
    import os

    t0 = time.perf_counter()
    pool = None
    if workers > 0 and n > chunk_size:
        from concurrent.futures import ProcessPoolExecutor

        # start the worker now: before the population is drawn (it overlaps the start-up) and
        # before the HDF5 file is open (a forked worker then holds no HDF5 state)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_worker_init,
                                   initargs=(os.getpid(),))
        for _ in range(workers):
            pool.submit(_prepare_worker, p)
    ok = False
    try:
        pop = draw_population(n, seed, p)
        if progress:
            print(f"cmlib simulate: population of {n} clusters drawn ({pop['_meta']['candidates_drawn']} "
                  f"candidate haloes) in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        rendered = _iter_rendered(pop, n, seed, p, chunk_size, pool, workers)
        columns = catalog_columns(p)
        with writer_cls(path, n, source="cmlib.simulate", catalog_columns=columns,
                        attrs=_file_attrs(p, seed, pop["_meta"]), overwrite=overwrite, lock=False) as writer:
            for s, e, img, extras in rendered:
                cat = _catalog_from(pop, extras, slice(s, e), columns)
                writer.write(images=img, log_m500=cat["log_m500"], z=cat["z"], cluster_id=cat["cluster_id"],
                             catalog=cat)
                del img
                if progress:
                    el = time.perf_counter() - t0
                    eta = el / e * (n - e)
                    print(f"cmlib simulate: {e}/{n} clusters, {el:.1f} s elapsed, ETA {eta:.1f} s",
                          file=sys.stderr, flush=True)
        ok = True
    finally:
        if pool is not None:
            # interrupted or failed: queued chunks are cancelled and the running ones (at most
            # workers + 1, about a second each) finish; killing a worker could leave a partial
            # result message in the pipe, on which ProcessPoolExecutor.shutdown blocks forever
            pool.shutdown(wait=True, cancel_futures=not ok)
    return Path(path)
