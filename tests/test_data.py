"""The data pipeline: loading and validation, splits, transforms, prepare, input pipelines."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from cmlib import cli, data as D, schema
from cmlib.book import thesis
from cmlib._io import to_json
from cmlib.errors import DataFileError, InputError
from conftest import write_tiny_file

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers

def _copy_and_edit(src, tmp_path, edit, name="broken.h5"):
    dst = tmp_path / name
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def _replace(f, key, array):
    del f[key]
    f.create_dataset(key, data=array)


# --------------------------------------------------------------------------- bands

def test_parse_bands_specs():
    assert D.parse_bands("thesis") == (1, 2, 3)          # bands 2-4, 455-1070 eV
    assert D.parse_bands("all") == tuple(range(10))
    assert D.parse_bands("2,3,4") == (1, 2, 3)
    assert D.parse_bands(" 2, 3 ,4 ") == (1, 2, 3)
    assert D.parse_bands("1-10") == tuple(range(10))
    assert D.parse_bands("1-3,7") == (0, 1, 2, 6)
    assert D.parse_bands("4,3,2") == (3, 2, 1)           # the order given is the channel order
    assert D.parse_bands(5) == (4,)
    lo, hi = schema.BAND_EDGES_EV[1], schema.BAND_EDGES_EV[4]
    assert (lo, hi) == (455.0, 1070.0)


@pytest.mark.parametrize("spec, match", [
    ("0", "numbered 1-10"), ("11", "band 11"), ("2,2", "twice"), ("1-3,3", "twice"), ("", "empty"),
    ("a", "not a number"), ("4-2", "backwards"), ("2;3", "not a number"),
])
def test_parse_bands_errors(spec, match):
    with pytest.raises(InputError, match=match):
        D.parse_bands(spec)


def test_select_bands():
    x = np.arange(2 * 4 * 4 * 10, dtype=np.float32).reshape(2, 4, 4, 10)
    y = D.select_bands(x, (3, 1))
    np.testing.assert_array_equal(y, x[..., [3, 1]])
    y[...] = -1
    assert x.min() >= 0                                   # a copy, not a view
    with pytest.raises(InputError, match="outside"):
        D.select_bands(x, (10,))


# --------------------------------------------------------------------------- padding & augmentation

def test_pad_thesis_keeps_cluster_top_left():
    x = np.ones((2, 50, 50, 3), np.float32)
    p = D.pad_images(x, "thesis")
    assert p.shape == (2, 71, 71, 3)
    assert p[:, :50, :50].min() == 1 and p[:, 50:].max() == 0 and p[:, :, 50:].max() == 0
    c = D.pad_images(x, "center")
    assert c[:, 10:60, 10:60].min() == 1 and c.sum() == x.sum()
    assert c[:, :10].max() == 0 and c[:, 60:].max() == 0 and c[:, :, 60:].max() == 0   # 10 before, 11 after
    assert D.pad_images(x, "none") is x
    one = D.pad_images(x[0], "thesis")                    # a single (H, W, C) image
    assert one.shape == (71, 71, 3)
    with pytest.raises(InputError, match="at least 50"):
        D.pad_images(x, "thesis", size=40)
    with pytest.raises(InputError, match="unknown padding"):
        D.pad_images(x, "reflect")


def test_flip_and_rotation_semantics():
    x = np.zeros((1, 5, 5, 1), np.float32)
    x[0, 0, 1, 0] = 1.0                                   # row 0, column 1
    assert D.flip_lr(x)[0, 0, 3, 0] == 1                 # column mirrored
    assert D.flip_ud(x)[0, 4, 1, 0] == 1                 # row mirrored
    assert D.rot90(x, 1)[0, 3, 0, 0] == 1                # counter-clockwise, as np.rot90
    np.testing.assert_array_equal(D.rot90(x, 4), x)
    np.testing.assert_array_equal(D.rot90(D.rot90(x, 1), 3), x)
    np.testing.assert_array_equal(D.flip_ud(D.flip_lr(x)), D.rot90(x, 2))
    with pytest.raises(InputError, match="NHWC"):
        D.flip_lr(x[0])


def test_augment_batch_matches_the_ops():
    rng = np.random.default_rng(0)
    x = rng.random((16, 6, 6, 2)).astype(np.float32)
    lr, ud, rk = rng.random(16) < 0.5, rng.random(16) < 0.5, rng.integers(0, 4, 16)
    out = D.augment_batch(x, lr, ud, rk)
    for i in range(16):
        e = x[i:i + 1]
        e = D.flip_lr(e) if lr[i] else e
        e = D.flip_ud(e) if ud[i] else e
        e = D.rot90(e, int(rk[i]))
        np.testing.assert_array_equal(out[i:i + 1], e)
    np.testing.assert_array_equal(D.augment_batch(x, np.zeros(16), np.zeros(16), np.zeros(16)), x)


# --------------------------------------------------------------------------- load

def test_load_matches_file(tiny_h5):
    d = D.load(tiny_h5)
    with h5py.File(tiny_h5) as f:
        np.testing.assert_array_equal(d.images, f["images"][:])
        np.testing.assert_array_equal(d.log_m500, f["log_m500"][:])
        np.testing.assert_array_equal(d.cluster_id, f["cluster_id"][:])
        assert d.content_sha256 == f.attrs["content_sha256"]
    assert d.images.dtype == np.float32 and d.images.shape == (40, 50, 50, 10)
    assert d.bands == tuple(range(10)) and d.n == d.n_file == 40
    assert set(d.catalog) == {"M500c", "kT"} and d.catalog_units["M500c"] == "Msun"
    np.testing.assert_allclose(np.log10(d.catalog["M500c"]), d.log_m500)
    assert d.attrs["schema"] == "cmlib-clusters" and isinstance(d.attrs["source"], str)
    assert "40 of 40" in repr(d)
    t = D.load(tiny_h5, bands="thesis", max_clusters=7, block=3)
    assert t.images.shape == (7, 50, 50, 3) and t.bands == (1, 2, 3) and t.n_file == 40
    np.testing.assert_array_equal(t.images, d.images[:7, :, :, 1:4])
    assert t.catalog["kT"].shape == (7,)
    assert t.band_labels()[0] == "band 2: 455\u2013660 eV"
    z = D.load(tiny_h5, bands=(9, 0))                    # zero-based sequences, order kept
    np.testing.assert_array_equal(z.images, d.images[..., [9, 0]])
    assert D.load(tiny_h5, verify_hash=True).n == 40


@pytest.mark.parametrize("name, edit, match", [
    ("schema", lambda f: f.attrs.__setitem__("schema", "other"), "uses schema 'other'"),
    ("newer", lambda f: f.attrs.__setitem__("schema_version", 99), "Upgrade cmlib"),
    ("older", lambda f: f.attrs.__setitem__("schema_version", 0), "Re-create"),
    ("no-attr", lambda f: f.attrs.__delitem__("pixel_scale_arcsec"), "lacks the root attribute"),
    ("no-schema", lambda f: f.attrs.__delitem__("schema"), "not a cmlib data file"),
    ("no-dataset", lambda f: f.__delitem__("z"), r"lacks the dataset\(s\) /z"),
    ("shape", lambda f: _replace(f, "images", np.zeros((40, 40, 40, 10), "f4")), "40x40 px"),
    ("bands", lambda f: _replace(f, "images", np.zeros((40, 50, 50, 3), "f4")), "3 bands but band_edges_ev"),
    ("edges", lambda f: f.attrs.__setitem__("band_edges_ev", np.array([1.0, 1.0, 2.0])), "strictly increasing"),
    ("length", lambda f: _replace(f, "z", np.full(39, 0.3)), "lengths disagree"),
    ("catalog-length", lambda f: _replace(f, "catalog/kT", np.ones(41)), "catalog/kT: 41"),
    ("n-attr", lambda f: f.attrs.__setitem__("n_clusters", 41), "n_clusters attribute: 41"),
    ("label-range", lambda f: f["log_m500"].__setitem__(5, 11.0), r"outside the physical range \[12.0, 16.0\]"),
    ("label-nan", lambda f: f["log_m500"].__setitem__(3, np.nan), "index 3"),
    ("linear-mass", lambda f: f["log_m500"].__setitem__(slice(None), 1e14), "linear mass"),
    ("z-range", lambda f: f["z"].__setitem__(0, -0.5), "redshift"),
    ("dup-ids", lambda f: f["cluster_id"].__setitem__(1, 1000), "duplicated id"),
    ("ids-float", lambda f: _replace(f, "cluster_id", np.arange(40.0)), "expected integers"),
])
def test_load_rejects_bad_files(tiny_h5, tmp_path, name, edit, match):
    bad = _copy_and_edit(tiny_h5, tmp_path, edit, f"{name}.h5")
    with pytest.raises(DataFileError, match=match) as info:
        D.load(bad)
    assert str(bad) in str(info.value)                   # names the file
    with pytest.raises(DataFileError, match=match):      # describe validates the same way
        D.describe(bad)


def test_load_rejects_bad_counts_in_any_block(tiny_h5, tmp_path):
    def nan(f):
        img = f["images"][33]
        img[10, 10, 7] = np.nan
        f["images"][33] = img

    bad = _copy_and_edit(tiny_h5, tmp_path, nan, "nan.h5")
    with pytest.raises(DataFileError, match=r"cluster 33 \(id 1033\) holds NaN"):
        D.load(bad, block=8)
    assert D.load(bad, max_clusters=30).n == 30          # only the loaded part's images are streamed

    def neg(f):
        img = f["images"][12]
        img[0, 0, 0] = -1
        f["images"][12] = img

    bad = _copy_and_edit(tiny_h5, tmp_path, neg, "neg.h5")
    with pytest.raises(DataFileError, match="cluster 12 .* negative"):
        D.load(bad, bands="thesis")                      # unselected bands are validated too


def test_load_verify_hash_detects_changed_content(tiny_h5, tmp_path):
    def change(f):
        img = f["images"][2]
        img[1, 1, 1] += 1
        f["images"][2] = img

    bad = _copy_and_edit(tiny_h5, tmp_path, change, "changed.h5")
    assert D.load(bad).n == 40                           # the content itself is valid
    with pytest.raises(DataFileError, match="content hash does not match"):
        D.load(bad, verify_hash=True)


def test_load_missing_not_hdf5_truncated(tmp_path, tiny_h5):
    with pytest.raises(DataFileError, match="does not exist.*cmlib simulate"):
        D.load(tmp_path / "nope.h5")
    with pytest.raises(DataFileError, match="is a directory"):
        D.load(tmp_path)
    txt = tmp_path / "notes.h5"
    txt.write_text("not hdf5\n" * 100)
    with pytest.raises(DataFileError, match="not an HDF5 file"):
        D.load(txt)
    cut = tmp_path / "cut.h5"
    raw = Path(tiny_h5).read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFileError, match="truncated or damaged"):
        D.load(cut)


def test_load_argument_errors(tiny_h5):
    with pytest.raises(InputError, match="exceeds the 40 clusters"):
        D.load(tiny_h5, max_clusters=41)
    with pytest.raises(InputError, match="positive integer"):
        D.load(tiny_h5, max_clusters=0)
    with pytest.raises(InputError, match="band 11"):
        D.load(tiny_h5, bands="2,11")


# --------------------------------------------------------------------------- describe / cmlib info

def test_describe_and_format(tiny_h5, capsys):
    info = D.describe(tiny_h5)
    d = D.load(tiny_h5)
    assert info["n_clusters"] == 40 and info["image_shape"] == [50, 50, 10]
    assert info["schema"] == {"name": "cmlib-clusters", "version": 1}
    totals = d.images.sum(axis=(0, 1, 2), dtype=np.float64)
    np.testing.assert_allclose([b["total_counts"] for b in info["bands"]], totals)
    np.testing.assert_allclose([b["mean_counts_per_cluster"] for b in info["bands"]], totals / 40)
    assert [b["thesis_band"] for b in info["bands"]] == [i in (1, 2, 3) for i in range(10)]
    assert info["bands"][1]["E_min_eV"] == 455.0
    assert info["labels"]["log_m500"]["quantiles"]["0.5"] == pytest.approx(np.median(d.log_m500))
    assert info["labels"]["z"]["max"] == pytest.approx(d.z.max())
    assert {c["name"]: c["unit"] for c in info["catalog"]} == {"M500c": "Msun", "kT": "keV"}
    assert info["provenance"]["content_sha256"] == d.content_sha256
    assert info["field_arcmin"] == pytest.approx(20.0)
    json.loads(to_json(info))                            # JSON-able for `cmlib info --json`
    text = D.format_description(info)
    for part in ("40", "455-660", "Msun", d.content_sha256, "log10 M500c/Msun", "24 arcsec"):
        assert part in text
    assert cli.main(["info", str(tiny_h5)]) == 0
    assert "cmlib data file" in capsys.readouterr().out
    assert cli.main(["info", "--json", str(tiny_h5)]) == 0
    assert json.loads(capsys.readouterr().out)["n_clusters"] == 40
    assert cli.main(["info", str(Path(tiny_h5).with_name("missing.h5"))]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_describe_shows_generator_provenance(tmp_path):
    p = write_tiny_file(tmp_path / "g.h5", n=12, seed=3, generator_params=json.dumps({"psf": True, "bkg": 1.5}))
    info = D.describe(p)
    assert info["provenance"]["generator_params"] == {"psf": True, "bkg": 1.5}
    assert "bkg=1.5" in D.format_description(info)


# --------------------------------------------------------------------------- splits

def test_thesis_split_reproduces_table2():
    s = D.make_split("thesis", 7946, seed=0)
    assert 0.1 * 7946 == pytest.approx(794.6)
    assert D.table2_counts(s) == thesis.TABLE2           # 7946 / 7151 / 795
    assert s.val_is_test and s.val is not None and np.array_equal(s.val, s.test)
    assert np.intersect1d(s.train, s.test).size == 0
    np.testing.assert_array_equal(np.union1d(s.train, s.test), np.arange(7946))
    assert all(np.all(np.diff(a) > 0) for a in (s.train, s.test))   # sorted, unique
    again = D.make_split("thesis", 7946, seed=0)
    assert again.fingerprint == s.fingerprint
    assert D.make_split("thesis", 7946, seed=1).fingerprint != s.fingerprint
    assert D.make_split("thesis", 15).sizes() == {"train": 13, "val": 2, "test": 2}   # 1.5 -> 2


def test_stratified_split():
    rng = np.random.default_rng(5)
    n = 4000
    log_m = rng.normal(14.0, 0.3, n)
    z = rng.gamma(2.0, 0.15, n)
    s = D.make_split("train-val-test", {"log_m500": log_m, "z": z}, seed=2)
    assert s.sizes() == {"train": 3200, "val": 400, "test": 400}
    assert not s.val_is_test
    for a, b in ((s.train, s.val), (s.train, s.test), (s.val, s.test)):
        assert np.intersect1d(a, b).size == 0
    assert np.union1d(np.union1d(s.train, s.val), s.test).size == n
    # each joint stratum (5 x 5 quantile bins) holds its share to within one cluster
    qm = np.searchsorted(np.quantile(log_m, [0.2, 0.4, 0.6, 0.8]), log_m, side="right")
    qz = np.searchsorted(np.quantile(z, [0.2, 0.4, 0.6, 0.8]), z, side="right")
    key = qm * 5 + qz
    for part in (s.test, s.val):
        for k in np.unique(key):
            n_k = int((key == k).sum())
            assert abs(int((key[part] == k).sum()) - 0.1 * n_k) <= 1.5
    assert D.make_split("train-val-test", (log_m, z), seed=2).fingerprint == s.fingerprint
    s7946 = D.make_split("train-val-test", {"log_m500": rng.normal(14, .3, 7946), "z": rng.random(7946)})
    assert s7946.sizes() == {"train": 6356, "val": 795, "test": 795}


def test_split_errors_and_registry(tiny_h5):
    assert D.available_splits() == ["thesis", "train-val-test"]
    with pytest.raises(InputError, match="choose one of thesis, train-val-test"):
        D.make_split("kfold", 100)
    with pytest.raises(InputError, match="stratified"):
        D.make_split("train-val-test", 100)
    with pytest.raises(InputError, match="at least 5"):
        D.make_split("thesis", 4)
    with pytest.raises(InputError, match="non-negative"):
        D.make_split("thesis", 100, seed=-1)


def test_split_roundtrip_and_check(tiny_h5, tmp_path):
    d = D.load(tiny_h5)
    s = D.make_split("train-val-test", d, seed=4)
    np.testing.assert_array_equal(s.ids["test"], d.cluster_id[s.test])
    record = json.loads(json.dumps(s.to_dict()))
    back = D.Split.from_dict(record)
    assert back.fingerprint == s.fingerprint and back.name == s.name and back.seed == 4
    for key in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(back, key), getattr(s, key))
    back.check(d)
    record["test"][0], record["train"][0] = record["train"][0], record["test"][0]
    with pytest.raises(InputError, match="edited or damaged"):
        D.Split.from_dict(record)
    other = D.load(write_tiny_file(tmp_path / "o.h5", n=40, seed=9))
    other.cluster_id = other.cluster_id + 1
    with pytest.raises(InputError, match="another file"):
        s.check(other)
    with pytest.raises(InputError, match="made for 40 clusters"):
        D.prepare(D.load(tiny_h5, max_clusters=20), s)


# --------------------------------------------------------------------------- scaler & prepare

def test_scaler_modes():
    rng = np.random.default_rng(1)
    x = rng.poisson(3.0, (20, 8, 8, 2)).astype(np.float32)
    x[..., 1] *= 10
    assert D.Scaler("raw").transform(x) is not x
    np.testing.assert_array_equal(D.Scaler("raw").transform(x), x)
    np.testing.assert_allclose(D.Scaler("log1p").transform(x), np.log1p(x), rtol=1e-6)
    s = D.Scaler("standardize").fit(x, block=3)
    y = s.transform(x)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1, atol=1e-4)
    np.testing.assert_allclose(s.mean, x.mean(axis=(0, 1, 2)), rtol=1e-6)
    back = D.Scaler.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(back.transform(x), y)
    z = np.zeros((3, 4, 4, 2), np.float32)
    flat = D.Scaler("standardize").fit(z)
    assert flat.degenerate_bands == [0, 1] and np.all(flat.transform(z) == 0)
    with pytest.raises(InputError, match="fitted"):
        D.Scaler("standardize").transform(x)
    with pytest.raises(InputError, match="choose one of raw, log1p, standardize"):
        D.Scaler("minmax")


def test_prepare_thesis(tiny_h5):
    d = D.load(tiny_h5, bands="thesis")
    s = D.make_split("thesis", d, seed=0)
    p = D.prepare(d, s, bands="thesis", pad="thesis", scaling="standardize")
    assert p.val is p.test                                # the thesis's validation set is its test set
    assert p.image_shape == (71, 71, 3) and p.train.x_image.shape == (36, 50, 50, 3)
    for part, idx in ((p.train, s.train), (p.test, s.test)):
        assert part.x_image.dtype == part.x_z.dtype == part.y.dtype == np.float32
        assert part.y.shape == (part.n, 1) and part.x_z.shape == (part.n, 1)
        np.testing.assert_array_equal(part.ids, d.cluster_id[idx])
        np.testing.assert_allclose(part.y[:, 0], d.log_m500[idx], rtol=1e-6)
    # the scaler is fitted on the training set only
    np.testing.assert_allclose(p.scaler.mean, d.images[s.train].mean(axis=(0, 1, 2)), rtol=1e-5)
    assert not np.allclose(p.scaler.mean, d.images.mean(axis=(0, 1, 2)), rtol=1e-7)
    np.testing.assert_allclose(p.train.x_image, (d.images[s.train] - p.scaler.mean) / p.scaler.std, rtol=1e-4,
                               atol=1e-5)
    info = p.describe()
    assert info["sizes"] == {"train": 36, "val": 4, "test": 4} and info["bands"] == [2, 3, 4]
    assert info["split"]["val_is_test"] and json.loads(to_json(info))["image_shape"] == [71, 71, 3]
    assert info["memory_bytes"] == p.train.x_image.nbytes + p.test.x_image.nbytes
    assert info["augment_store_bytes"] == {"numpy": 0, "tensorflow": 0}
    x_before = p.train.x_image
    D.ArrayBatches(p.train, 8, D.epoch_plan(p.train.n, 0, 0, "flip"))       # builds the flip store: 2 copies
    assert p.describe()["augment_store_bytes"]["numpy"] == 2 * p.train.x_image.nbytes
    assert p.train.x_image is x_before                                       # the split's array is never swapped
    assert p.test.inputs()["image"].shape == (4, 71, 71, 3)


def test_prepare_band_mapping_and_errors(tiny_h5):
    d = D.load(tiny_h5, bands="thesis")
    s = D.make_split("train-val-test", d, seed=0)
    p = D.prepare(d, s, bands="3")                        # file band 3 = loaded channel 1
    assert p.val is not p.test and p.image_shape == (50, 50, 1)
    np.testing.assert_array_equal(p.val.x_image[..., 0], d.images[s.val][..., 1])
    with pytest.raises(InputError, match=r"bands \[1\] \(1-based\) were not loaded"):
        D.prepare(d, s, bands="1,2")
    with pytest.raises(InputError, match="unknown padding"):
        D.prepare(d, s, pad="edge")
    with pytest.raises(InputError, match="unknown scaling"):
        D.prepare(d, s, scaling="minmax")


# --------------------------------------------------------------------------- epoch plans

def test_epoch_plan_is_deterministic_and_complete():
    a = D.epoch_plan(1000, seed=3, epoch=7, augment="flip-rot90")
    b = D.epoch_plan(1000, seed=3, epoch=7, augment="flip-rot90")
    for key in ("order", "flip_lr", "flip_ud", "rot_k"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    np.testing.assert_array_equal(np.sort(a.order), np.arange(1000))
    assert not np.array_equal(a.order, D.epoch_plan(1000, 3, 8, "flip-rot90").order)
    assert not np.array_equal(a.order, D.epoch_plan(1000, 4, 7, "flip-rot90").order)
    flip = D.epoch_plan(1000, 3, 7, "flip")
    none = D.epoch_plan(1000, 3, 7, "none")
    np.testing.assert_array_equal(flip.order, a.order)   # order and flips do not depend on the mode
    np.testing.assert_array_equal(flip.flip_lr, a.flip_lr)
    assert not flip.rot_k.any() and not none.augmented and np.array_equal(none.order, a.order)
    assert 0.4 < a.flip_lr.mean() < 0.6 and 0.4 < a.flip_ud.mean() < 0.6
    assert set(np.unique(a.rot_k)) == {0, 1, 2, 3}
    assert a.n_batches(32) == 32
    with pytest.raises(InputError, match="choose one of none, flip, flip-rot90"):
        D.epoch_plan(10, 0, 0, "rotate")
    with pytest.raises(InputError, match="non-negative"):
        D.epoch_plan(10, 0, -1)


# --------------------------------------------------------------------------- input pipelines

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    path = write_tiny_file(tmp_path_factory.mktemp("pipe") / "p.h5", n=45, seed=2)
    d = D.load(path, bands="thesis")
    return D.prepare(d, D.make_split("thesis", d, seed=0), pad="thesis", scaling="raw")


def _reference_batches(split, batch_size, plan, x_image):
    """The batches by definition: the plan's samples, augment_batch, then pad_images."""
    out = []
    for start in range(0, split.n, batch_size):
        sl = slice(start, start + batch_size)
        idx = plan.order[sl]
        x = D.augment_batch(x_image[idx], plan.flip_lr[sl], plan.flip_ud[sl], plan.rot_k[sl])
        out.append((D.pad_images(x, split.pad, split.pad_size), split.x_z[idx], split.y[idx]))
    return out


@pytest.fixture(scope="module")
def data45(tmp_path_factory):
    return D.load(write_tiny_file(tmp_path_factory.mktemp("p45") / "p.h5", n=45, seed=2), bands="thesis")


@pytest.mark.parametrize("pad", ["thesis", "center", "none"])
@pytest.mark.parametrize("augment", ["none", "flip", "flip-rot90"])
@pytest.mark.parametrize("store", [True, False])
def test_tf_and_array_paths_give_identical_batches(data45, monkeypatch, pad, augment, store):
    d = data45
    prepared = D.prepare(d, D.make_split("thesis", d, seed=0), pad=pad, scaling="log1p")
    size = 50 if pad == "none" else 71
    original = prepared.train.x_image.copy()
    if not store:   # too large for the augmentation store: per-batch augmentation (and numpy_function for tf)
        monkeypatch.setattr(D.pipeline, "MAX_AUGMENT_STORE_BYTES", 0)
    plan = D.epoch_plan(prepared.train.n, seed=1, epoch=5, augment=augment)
    tf_batches = list(D.tf_dataset(prepared.train, 8, plan).as_numpy_iterator())
    arr = D.array_dataset(prepared.train, 8, plan)
    expected = _reference_batches(prepared.train, 8, plan, original)
    assert len(tf_batches) == len(arr) == len(expected) == 5        # 40 training clusters = 5 batches of 8
    for i, (xt, yt) in enumerate(tf_batches):
        xa, ya = arr[i]
        image, z, y = expected[i]
        assert set(xt) == {"image", "redshift"} and xt["image"].shape == (8, size, size, 3)
        for got in (xt, xa):
            np.testing.assert_array_equal(got["image"], image)
            np.testing.assert_array_equal(got["redshift"], z)
        np.testing.assert_array_equal(yt, y)
        np.testing.assert_array_equal(ya, y)
        assert ya.shape == (8, 1) and xa["image"].dtype == np.float32
        if pad == "thesis":   # augmentation happens before padding: the cluster stays top-left
            assert xa["image"][:, 50:].max() == 0 and xa["image"][:, :, 50:].max() == 0
    np.testing.assert_array_equal(prepared.train.x_image, original)   # the store keeps the data as they were
    copies = {"none": 0, "flip": 2, "flip-rot90": 4}[augment] if store else 0
    held = prepared.train._cache.get("store")
    assert (0 if held is None else held.shape[0]) == copies
    # one fast path: TensorFlow gathers rows of the same store (the identity alone needs no copy)
    tf_rows = prepared.train._cache.get("tf_rows")
    want = {"none": 1, "flip": 2, "flip-rot90": 4}[augment] if store or augment == "none" else None
    assert (None if tf_rows is None else tf_rows[1]) == want


def test_partial_last_batch_and_eval_input(prepared):
    plan = D.epoch_plan(prepared.train.n, 0, 0, "flip")
    tf_b = list(D.tf_dataset(prepared.train, 16, plan).as_numpy_iterator())
    assert [len(y) for _, y in tf_b] == [16, 16, 8]
    seen = np.concatenate([D.array_dataset(prepared.train, 16, plan)[i][1][:, 0] for i in range(3)])
    np.testing.assert_array_equal(np.sort(seen), np.sort(prepared.train.y[:, 0]))   # every sample once
    for backend in ("tf", "array"):
        ev = D.make_eval_input(prepared, "test", batch_size=3, backend=backend)
        batches = list(ev.as_numpy_iterator()) if backend == "tf" else [ev[i] for i in range(len(ev))]
        np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), prepared.test.y)   # fixed order
        np.testing.assert_array_equal(np.concatenate([x["image"] for x, _ in batches]),
                                      prepared.test.inputs()["image"])                         # no augmentation


def test_make_train_input_backends_and_resume(prepared):
    import keras
    import tensorflow as tf

    assert keras.backend.backend() == "tensorflow"
    auto = D.make_train_input(prepared, seed=2, epoch=3, batch_size=8, augment="flip-rot90")
    assert isinstance(auto, tf.data.Dataset)
    neutral = D.make_train_input(prepared, seed=2, epoch=3, batch_size=8, augment="flip-rot90", backend="array")
    assert isinstance(neutral, keras.utils.PyDataset) and neutral.plan.epoch == 3
    # "resume": epoch 3 built after epochs 0-2 were consumed equals epoch 3 built first
    for e in range(3):
        list(D.make_train_input(prepared, seed=2, epoch=e, batch_size=8, augment="flip-rot90"))
    again = D.make_train_input(prepared, seed=2, epoch=3, batch_size=8, augment="flip-rot90")
    for (xa, ya), (xb, yb) in zip(auto.as_numpy_iterator(), again.as_numpy_iterator()):
        np.testing.assert_array_equal(xa["image"], xb["image"])
        np.testing.assert_array_equal(ya, yb)
    with pytest.raises(InputError, match="unknown input backend"):
        D.make_train_input(prepared, seed=0, epoch=0, backend="torch")
    with pytest.raises(InputError, match="plan is for"):
        D.tf_dataset(prepared.train, 8, D.epoch_plan(3, 0, 0))
    with pytest.raises(InputError, match="batch_size"):
        D.array_dataset(prepared.train, 0)


def test_keras_fit_on_both_paths(prepared):
    import keras

    def model():
        img = keras.Input(prepared.image_shape, name="image")
        z = keras.Input((1,), name="redshift")
        x = keras.layers.Flatten()(keras.layers.AveragePooling2D(8)(img))
        out = keras.layers.Dense(1, name="log_m500")(keras.layers.Concatenate()([x, z]))
        m = keras.Model({"image": img, "redshift": z}, out)
        m.compile("adam", "mse")
        return m

    m = model()
    for backend in ("tf", "array"):
        h = m.fit(D.make_train_input(prepared, seed=0, epoch=0, batch_size=16, augment="flip", backend=backend),
                  validation_data=D.make_eval_input(prepared, "val", 16, backend=backend), epochs=1, verbose=0,
                  shuffle=False)
        assert np.isfinite(h.history["val_loss"][0])


def test_array_path_runs_without_tensorflow_on_jax(tmp_path):
    pytest.importorskip("jax")
    script = tmp_path / "jax_run.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {str(ROOT / 'tests')!r})
from conftest import write_tiny_file
import numpy as np, keras
from cmlib import data as D
d = D.load(write_tiny_file({str(tmp_path / 'j.h5')!r}, n=30), bands="thesis")
p = D.prepare(d, D.make_split("train-val-test", d), pad="thesis", scaling="log1p")
img = keras.Input(p.image_shape, name="image"); z = keras.Input((1,), name="redshift")
x = keras.layers.Flatten()(keras.layers.AveragePooling2D(8)(img))
m = keras.Model({{"image": img, "redshift": z}}, keras.layers.Dense(1)(keras.layers.Concatenate()([x, z])))
m.compile("adam", "mse")
ds = D.make_train_input(p, seed=0, epoch=0, batch_size=8, augment="flip-rot90")
assert type(ds).__name__ == "ArrayDataset", type(ds)
h = m.fit(ds, validation_data=D.make_eval_input(p, "val", 8), epochs=1, verbose=0, shuffle=False)
assert np.isfinite(h.history["loss"][0])
print("backend", keras.backend.backend(), "tensorflow imported", "tensorflow" in sys.modules)
""")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "backend jax tensorflow imported False" in r.stdout


# --------------------------------------------------------------------------- the book's Fig. 21

def test_pipeline_example_fig21(tiny_h5):
    d = D.load(tiny_h5)
    steps = D.pipeline_example(d, index=4)
    assert [s["step"] for s in steps] == ["raw", "bands", "padded", "flipped", "flipped-after-padding"]
    assert [s["shape"] for s in steps[:4]] == ["(40, 50, 50, 10)", "(40, 50, 50, 3)", "(40, 71, 71, 3)",
                                               "(40, 71, 71, 3)"]
    raw, sel, padded, flipped, after = (s["array"] for s in steps)
    np.testing.assert_array_equal(sel, raw[..., 1:4])
    np.testing.assert_array_equal(padded[:50, :50], sel)
    np.testing.assert_array_equal(flipped[:50, :50], sel[:, ::-1])      # cmlib: flip, then pad
    np.testing.assert_array_equal(after[:50, 21:], sel[:, ::-1])        # thesis order moves the cluster right
    with pytest.raises(InputError, match="out of range"):
        D.pipeline_example(d, index=40)


def test_info_on_a_named_pipe_is_an_error_not_a_hang(tmp_path):
    import subprocess
    import sys

    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    out = subprocess.run([sys.executable, "-m", "cmlib.cli", "info", str(fifo)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "not a regular file" in out.stderr, out.stderr


def test_run_input_shows_each_epochs_plan_from_any_start(data45):
    """make_run_input: epoch e of a whole-run input = make_train_input(epoch=e), also when resumed at e > 0."""
    prepared = D.prepare(data45, D.make_split("thesis", data45, seed=0), pad="thesis", scaling="log1p")
    for backend in ("tf", "array"):
        ds, steps = D.make_run_input(prepared, seed=3, start_epoch=2, epochs=5, batch_size=16, augment="flip-rot90",
                                     backend=backend)
        assert steps == 3                                            # 40 training clusters, batches of 16
        got = list(ds.as_numpy_iterator()) if backend == "tf" else None
        for k, epoch in enumerate(range(2, 5)):
            want = list(D.make_train_input(prepared, seed=3, epoch=epoch, batch_size=16, augment="flip-rot90",
                                           backend="array"))
            if backend == "tf":
                have = got[k * steps:(k + 1) * steps]
            else:
                have = [ds[i] for i in range(len(ds))]
                ds.on_epoch_end()
            for (xh, yh), (xw, yw) in zip(have, want):
                np.testing.assert_array_equal(xh["image"], xw["image"])
                np.testing.assert_array_equal(yh, yw)
    with pytest.raises(InputError, match="start_epoch 5 must be below epochs 5"):
        D.make_run_input(prepared, seed=0, start_epoch=5, epochs=5)
