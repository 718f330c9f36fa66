"""The LMU lab-course importer (cmlib.lmu / cmlib.data.import_lmu), on small synthetic files."""
from __future__ import annotations

import gzip
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmlib import cli, data as D
from cmlib._io import sha256_file
from cmlib.errors import DataFileError, OutputExistsError, UnsafeInputError

ROOT = Path(__file__).resolve().parents[1]
N = 24


def _images(n=N, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.poisson(0.3, (50, 50, 10)).astype(dtype) for _ in range(n)]


def _write_pickle(path, images, ids, **extra):
    obj = {"gsm_3dImgs": images, "cluster": ids, **extra}
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _catalog_columns(n=N, seed=0):
    rng = np.random.default_rng(seed + 1)
    return {
        "M500c": 10 ** rng.uniform(13.2, 14.8, n),
        "z": rng.uniform(0.05, 1.2, n),
        "kT": rng.uniform(1.0, 8.0, n),
        "R500c_arcmin": rng.uniform(1.0, 5.0, n),
        "EXT": rng.integers(0, 2, n).astype(np.int32),
        "DET_LIKE": rng.uniform(5, 500, n).astype(np.float32),
        "name": np.array([f"eFEDS-mock-{i:04d}" for i in range(n)]),
    }


def _write_fits(path, columns, vec=True, units=True):
    from astropy.table import Table
    import astropy.units as u

    t = Table(columns)
    if units:
        t["M500c"].unit = u.Msun
        t["kT"].unit = u.keV
    if vec:
        t["pos"] = np.arange(len(t) * 3, dtype=float).reshape(len(t), 3)
    t.write(path, format="fits", overwrite=True)
    return path


def _write_feather(path, columns, nulls=True):
    import pyarrow as pa
    import pyarrow.feather as feather

    arrays = {k: pa.array(v) for k, v in columns.items()}
    if nulls:
        kt = list(columns["kT"])
        kt[2] = None
        arrays["kT"] = pa.array(kt, type=pa.float64())
        names = list(columns["name"])
        names[5] = None
        arrays["name"] = pa.array(names, type=pa.string())
    feather.write_feather(pa.table(arrays), path)
    return path


@pytest.fixture
def lmu_files(tmp_path):
    images = _images()
    ids = list(range(5000, 5000 + N))
    pkl = _write_pickle(tmp_path / "eFEDS-3dImgs.pickle", images, ids)
    fits = _write_fits(tmp_path / "catalog.fits", _catalog_columns())
    return tmp_path, pkl, fits, images, ids


# --------------------------------------------------------------------------- success

def test_import_fits_roundtrip(lmu_files):
    tmp, pkl, fits, images, ids = lmu_files
    out = D.import_lmu(pkl, fits, tmp / "out" / "efeds_lmu.h5", trust_pickle=True, progress=False)
    d = D.load(out, verify_hash=True)
    np.testing.assert_array_equal(d.images, np.stack(images).astype(np.float32))
    np.testing.assert_array_equal(d.cluster_id, ids)
    cols = _catalog_columns()
    np.testing.assert_allclose(d.log_m500, np.log10(cols["M500c"]))
    np.testing.assert_allclose(d.z, cols["z"])
    # every catalogue column is kept: numbers, strings, a 2-D column flattened
    assert set(d.catalog) == set(cols) | {"pos_0", "pos_1", "pos_2"}
    assert d.catalog["name"][3] == "eFEDS-mock-0003"
    np.testing.assert_array_equal(d.catalog["EXT"], cols["EXT"])
    np.testing.assert_array_equal(d.catalog["pos_2"], np.arange(N) * 3 + 2.0)
    assert d.catalog_units["M500c"] == "solMass" and d.catalog_units["kT"] == "keV"
    assert d.catalog_units["R500c_arcmin"] == "arcmin"
    a = d.attrs
    assert a["source"] == "lmu-import" and a["catalog_format"] == "fits"
    assert a["input_images_sha256"] == sha256_file(pkl) and a["input_catalog_sha256"] == sha256_file(fits)
    assert a["input_images_file"] == pkl.name and a["input_catalog_file"] == fits.name
    assert json.loads(a["catalog_columns"]) == list(cols) + ["pos"]
    assert "by order" in a["id_rule"] and json.loads(a["id_columns"]) == []
    assert any("flattened" in note for note in json.loads(a["import_notes"]))
    text = D.format_description(D.describe(out))
    assert "lmu-import" in text and sha256_file(pkl) in text and "name" in text


def test_import_feather_with_nulls_and_id_column(tmp_path):
    images = _images(seed=4, dtype=np.float32)
    ids = [7, 3, 11] + list(range(100, 100 + N - 3))
    pkl = _write_pickle(tmp_path / "imgs.pickle.gz", images, ids)       # compressed pickles work too
    cols = {**_catalog_columns(seed=4), "ID": np.asarray(ids, np.int64)}
    feather = _write_feather(tmp_path / "catalog.f", cols)
    out = D.import_lmu(pkl, feather, tmp_path / "lmu.h5", trust_pickle=True, progress=False)
    d = D.load(out)
    assert json.loads(d.attrs["id_columns"]) == ["ID"] and "verified" in d.attrs["id_rule"]
    assert d.attrs["catalog_format"] == "feather" and d.attrs["input_images_compression"] == "gzip"
    assert np.isnan(d.catalog["kT"][2]) and d.catalog["name"][5] == ""
    notes = json.loads(d.attrs["import_notes"])
    assert any("kT" in n and "NaN" in n for n in notes) and any("name" in n for n in notes)
    np.testing.assert_array_equal(d.images, np.stack(images))
    assert d.catalog_units["M500c"] == "Msun"                          # documented unit (peers.md)


def test_non_integer_ids_are_kept_as_text(tmp_path):
    ids = [f"cl{i:03d}" for i in range(N)]
    pkl = _write_pickle(tmp_path / "i.pickle", _images(), ids)
    cols = {**_catalog_columns(), "cluster": np.array(ids)}
    fits = _write_fits(tmp_path / "c.fits", cols, vec=False)
    d = D.load(D.import_lmu(pkl, fits, tmp_path / "o.h5", trust_pickle=True, progress=False))
    np.testing.assert_array_equal(d.cluster_id, np.arange(N))
    np.testing.assert_array_equal(d.catalog["lmu_cluster"], ids)
    assert json.loads(d.attrs["id_columns"]) == ["cluster"]


# --------------------------------------------------------------------------- refusals and errors

def test_refuses_to_unpickle_without_trust(tmp_path, lmu_files, capsys):
    _, pkl, fits, _, _ = lmu_files
    marker = tmp_path / "code-ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pickle"
    evil.write_bytes(pickle.dumps({"gsm_3dImgs": [Evil()], "cluster": [1]}))
    with pytest.raises(UnsafeInputError, match="--trust-pickle") as info:
        D.import_lmu(evil, fits, tmp_path / "x.h5")
    assert "execute arbitrary code" in str(info.value) and "trusted source" in str(info.value)
    assert not marker.exists() and not (tmp_path / "x.h5").exists()
    assert cli.main(["import-lmu", str(pkl), str(fits), "--out", str(tmp_path / "y.h5")]) == 2
    assert "--trust-pickle" in capsys.readouterr().err
    assert cli.main(["import-lmu", str(pkl), str(fits), "--out", str(tmp_path / "y.h5"), "--trust-pickle",
                     "--quiet"]) == 0
    assert D.load(tmp_path / "y.h5").n == N


def _expect_error(tmp_path, pkl, cat, match, exc=DataFileError):
    out = tmp_path / "bad-out.h5"
    with pytest.raises(exc, match=match):
        D.import_lmu(pkl, cat, out, trust_pickle=True, progress=False)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bad-out.h5")]   # no temporary left


def test_count_and_id_mismatches(tmp_path):
    fits = _write_fits(tmp_path / "c.fits", _catalog_columns())
    few = _write_pickle(tmp_path / "few.pickle", _images(N - 1), list(range(N - 1)))
    _expect_error(tmp_path, few, fits, f"{N - 1} images.*{N - 1} ids.*{N} catalogue rows")
    short_ids = _write_pickle(tmp_path / "ids.pickle", _images(), list(range(N - 2)))
    _expect_error(tmp_path, short_ids, fits, f"{N} images.*{N - 2} ids")
    dup = _write_pickle(tmp_path / "dup.pickle", _images(), [1] * N)
    _expect_error(tmp_path, dup, fits, "not unique")
    ids = list(range(N))
    pkl = _write_pickle(tmp_path / "ok.pickle", _images(), ids)
    shuffled = _write_fits(tmp_path / "perm.fits", {**_catalog_columns(), "ID": np.roll(ids, 3)})
    _expect_error(tmp_path, pkl, shuffled, "'ID' .* different order")


def test_catalogue_errors(tmp_path):
    pkl = _write_pickle(tmp_path / "ok.pickle", _images(), list(range(N)))
    cols = _catalog_columns()
    no_mass = {("m500c" if k == "M500c" else k): v for k, v in cols.items()}
    _expect_error(tmp_path, pkl, _write_fits(tmp_path / "a.fits", no_mass, vec=False, units=False),
                  "no column 'M500c'.*Did you mean m500c")
    nan_mass = {**cols, "M500c": np.where(np.arange(N) == 4, np.nan, cols["M500c"])}
    _expect_error(tmp_path, pkl, _write_fits(tmp_path / "b.fits", nan_mass), "row 4")
    log_mass = {**cols, "M500c": np.log10(cols["M500c"])}
    _expect_error(tmp_path, pkl, _write_fits(tmp_path / "c.fits", log_mass), "look like log10 masses")
    bad_z = {**cols, "z": np.full(N, np.nan)}
    _expect_error(tmp_path, pkl, _write_feather(tmp_path / "d.feather", bad_z, nulls=False), "redshift")
    odd = tmp_path / "catalog.csv"
    odd.write_text("M500c,z\n")
    _expect_error(tmp_path, pkl, odd, "cannot tell the format", exc=D.InputError)
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"SIMPLE  = nonsense" * 10)
    _expect_error(tmp_path, pkl, junk, "cannot read the FITS catalogue")


def test_pickle_errors(tmp_path):
    fits = _write_fits(tmp_path / "c.fits", _catalog_columns())
    nokeys = tmp_path / "nokeys.pickle"
    nokeys.write_bytes(pickle.dumps({"images": [], "ids": []}))
    _expect_error(tmp_path, nokeys, fits, "lacks the key.*'gsm_3dImgs'.*it has 'images', 'ids'")
    notdict = tmp_path / "list.pickle"
    notdict.write_bytes(pickle.dumps([1, 2, 3]))
    _expect_error(tmp_path, notdict, fits, "holds a list, not a dict")
    good = _write_pickle(tmp_path / "good.pickle", _images(), list(range(N)))
    cut = tmp_path / "cut.pickle"
    cut.write_bytes(good.read_bytes()[:100_000])
    _expect_error(tmp_path, cut, fits, "not a complete pickle.*truncated")
    shape = _images()
    shape[7] = shape[7][..., :3]
    _expect_error(tmp_path, _write_pickle(tmp_path / "s.pickle", shape, list(range(N))), fits,
                  r"image 7 .* shape \(50, 50, 3\)")
    nan = _images()
    nan[20][1, 2, 3] = np.nan
    _expect_error(tmp_path, _write_pickle(tmp_path / "n.pickle", nan, list(range(N))), fits,
                  "image 20 .*NaN")
    neg = _images()
    neg[0][0, 0, 0] = -2
    _expect_error(tmp_path, _write_pickle(tmp_path / "g.pickle", neg, list(range(N))), fits, "negative")
    _expect_error(tmp_path, tmp_path / "missing.pickle", fits, "does not exist")


def test_output_exists(lmu_files):
    tmp, pkl, fits, _, _ = lmu_files
    out = tmp / "o.h5"
    D.import_lmu(pkl, fits, out, trust_pickle=True, progress=False)
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        D.import_lmu(pkl, fits, out, trust_pickle=True, progress=False)
    assert out.read_bytes() == before
    D.import_lmu(pkl, fits, out, trust_pickle=True, progress=False, overwrite=True)
    assert D.load(out).n == N


# --------------------------------------------------------------------------- memory

@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak RSS from Linux /proc")
def test_peak_memory_stays_near_one_pickle(tmp_path):
    """Streaming import: peak RSS grows by about one pickle, not two or three (float32 images)."""
    n = 500                                                # 500 x 100 kB = 50 MB of images
    rng = np.random.default_rng(0)
    imgs = [rng.poisson(0.3, (50, 50, 10)).astype(np.float32) for _ in range(n)]
    pkl = _write_pickle(tmp_path / "m.pickle", imgs, list(range(n)))
    del imgs
    _write_feather(tmp_path / "m.f", _catalog_columns(n), nulls=False)
    script = f"""
import json
import numpy as np, h5py, pandas, pyarrow.feather  # library imports are not part of the growth
from cmlib import data as D
def status(key):  # VmRSS now, VmHWM peak of this process image (ru_maxrss would include the parent's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))
base = status("VmRSS")
D.import_lmu({str(pkl)!r}, {str(tmp_path / 'm.f')!r}, {str(tmp_path / 'm.h5')!r}, trust_pickle=True,
             progress=False, block_size=64)
print(json.dumps({{"base": base, "peak": status("VmHWM")}}))
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    size = pkl.stat().st_size
    growth = m["peak"] - m["base"]
    # one materialised pickle plus one 64-cluster block and library buffers; a full
    # np.stack / astype copy of the images would add another 50 MB
    print(f"import of a {size / 1e6:.0f} MB pickle: peak RSS grew by {growth / 1e6:.0f} MB")
    assert growth < 1.0 * size + 35e6, f"peak grew by {growth / 1e6:.0f} MB for a {size / 1e6:.0f} MB pickle"
