"""The model zoo (cmlib.models): architectures, recipes, options, errors, losses, counting.

Deep backbones are slow to build on CPU, so each is built at most once or twice
here, mostly at 32 x 32 where the test is about shapes.  Thesis Table 3 is
checked for the cheap models; benchmarks/bench_models.py checks all of them.
"""
from __future__ import annotations

import dataclasses

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cmlib import cli, models  # noqa: E402
from cmlib.book import thesis  # noqa: E402
from cmlib.config import Recipe  # noqa: E402
from cmlib.errors import CmlibError, DataFileError, InputError  # noqa: E402

# Keras's TensorFlow backend converts tensors with np.array(x, copy=False): numpy 2 notice, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

THESIS_NAMES = ["basic", "vgg16", "vgg19", "resnet50", "resnet50v2", "resnet101", "resnet101v2",
                "resnet152", "resnet152v2", "efficientnetb7"]


def _data(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    return ([rng.poisson(1.0, (n,) + tuple(shape)).astype("float32"),
             rng.uniform(0.05, 1.2, (n, 1)).astype("float32")],
            rng.uniform(13.0, 15.0, n).astype("float32"))


def _backbone(model):
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


@pytest.fixture
def registry(monkeypatch):
    """Register test models in a copy of the registry that is restored afterwards."""
    monkeypatch.setattr(models.registry, "_REGISTRY", dict(models.registry._REGISTRY))
    return models.registry._REGISTRY


# --------------------------------------------------------------------------- registry & recipes

def test_registry_has_every_thesis_model_and_the_baseline():
    names = models.available_models()
    assert set(THESIS_NAMES + ["krippendorf2023"]) <= set(names)
    for name in names:
        spec = models.get_spec(name)
        assert spec.display_name == thesis.DISPLAY_NAMES[name]
        assert spec.family in models.FAMILIES
        assert isinstance(spec.recipe, Recipe)
        assert spec.reference and spec.description
    assert models.get_spec("resnet152v2").family == "resnet-v2"
    assert models.get_spec("krippendorf2023").family == "baseline"


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(InputError, match="unknown model 'resnet18'.*basic.*efficientnetb7"):
        models.build("resnet18", (71, 71, 3))
    with pytest.raises(InputError, match="choose one of"):
        models.get_spec("VGG16")


def test_recipes_are_the_thesis_and_paper_settings():
    basic = models.get_spec("basic").recipe
    assert dict(basic) == dict(bands="thesis", pad="none", scaling="raw", augment="flip", loss="mse",
                               output="point", optimizer="adam", lr=1e-3, weight_decay=0.0,
                               lr_schedule="constant", warmup_epochs=0, batch_size=32, early_stopping=20,
                               min_delta=0.0, head="flatten", dense_units=100, dropout=0.0, output_bias="zero",
                               label_scaling="none", precision="float32", reference_epochs=300)
    for name in THESIS_NAMES[1:]:
        r = models.get_spec(name).recipe
        assert (r["bands"], r["pad"], r["loss"], r["output"], r["lr"], r["batch_size"]) == \
            ("thesis", "thesis", "mse", "point", 1e-3, 32)          # thesis Table 4
        assert (r["early_stopping"], r["reference_epochs"], r["head"], r["dense_units"]) == \
            (0, 4000, "flatten", 512)
        # cmlib's two recorded deviations: output starts at the mean label, bf16 where the hardware has it
        assert (r["output_bias"], r["precision"], r["optimizer"], r["lr_schedule"]) == \
            ("mean", "auto", "adam", "constant")
    k = models.get_spec("krippendorf2023").recipe
    assert (k["bands"], k["pad"], k["loss"], k["output"], k["lr"], k["batch_size"], k["augment"],
            k["reference_epochs"]) == ("all", "none", "nll", "gaussian", 1e-4, 100, "flip-rot90", 500)
    assert k["early_stopping"] > 0
    assert models.get_spec("basic").default_input_shape == (50, 50, 3)
    assert models.get_spec("resnet50v2").default_input_shape == (71, 71, 3)
    assert models.get_spec("krippendorf2023").default_input_shape == (50, 50, 10)
    with pytest.raises(TypeError):
        basic["lr"] = 1.0  # recipes are read-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        basic.lr = 1.0


def test_make_recipe_validates():
    r = models.make_recipe(models.BASIC_RECIPE, lr=5e-4)   # thesis Fig. 25's second rate
    assert r["lr"] == 5e-4 and r["dense_units"] == 100
    with pytest.raises(InputError, match="unknown option.*epochs"):
        models.make_recipe(epochs=10)
    with pytest.raises(InputError, match="augment='rotate' is not valid; choose one of none, flip, flip-rot90"):
        models.make_recipe(augment="rotate")
    with pytest.raises(InputError, match="loss 'nll' needs output 'gaussian'"):
        models.make_recipe(loss="nll")
    with pytest.raises(InputError, match="batch_size=0 must be an integer >= 1"):
        models.make_recipe(batch_size=0)
    with pytest.raises(InputError, match="lr=2.0 must be a number in"):
        models.make_recipe(lr=2.0)
    with pytest.raises(InputError, match="weight_decay=0.01 needs optimizer 'adamw'"):
        models.make_recipe(weight_decay=0.01)
    with pytest.raises(InputError, match="warmup_epochs=3 needs lr_schedule 'warmup-cosine'"):
        models.make_recipe(warmup_epochs=3)
    with pytest.raises(InputError, match="bands .* is not valid|band 11"):
        models.make_recipe(bands="11")
    with pytest.raises(InputError, match="must be a cmlib.config.Recipe"):
        models.register("dictrecipe", family="basic", reference="x", recipe=dict(models.BASIC_RECIPE),
                        description="x")


def test_register_adds_an_architecture_in_one_function(registry):
    @models.register("tiny", display_name="Tiny CNN", family="basic", reference="test",
                     recipe=models.make_recipe(models.BASIC_RECIPE), description="1 conv",
                     min_size=2)
    def tiny(input_shape, *, head, output, weights, adapter, dropout, dense_units, seed):
        image, redshift = models.model_inputs(input_shape)
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
        out = models.regression_head(x, redshift, head=head, dense_units=dense_units,
                                     dropout=dropout, output=output, seed=seed)
        return keras.Model([image, redshift], out, name="tiny")

    assert "tiny" in models.available_models()
    m = models.build("tiny", (8, 8, 2), dense_units=7)
    assert m.get_layer("head_dense_1").units == 7
    assert m.predict(_data(3, (8, 8, 2))[0], verbose=0).shape == (3, 1)
    assert [r["name"] for r in models.model_table()][-1] == "tiny"
    with pytest.raises(InputError, match="already registered"):
        models.register("tiny", family="basic", reference="x", recipe=models.BASIC_RECIPE,
                        description="x")(tiny)
    with pytest.raises(InputError, match="not valid"):
        models.register("Bad Name", family="basic", reference="x", recipe=models.BASIC_RECIPE,
                        description="x")

    @models.register("broken", family="basic", reference="x", recipe=models.BASIC_RECIPE,
                     description="wrong output name", min_size=2)
    def broken(input_shape, **options):
        image, redshift = models.model_inputs(input_shape)
        x = keras.layers.Concatenate()([keras.layers.Flatten()(image), redshift])
        return keras.Model([image, redshift], keras.layers.Dense(1, name="mass")(x))

    with pytest.raises(InputError, match="no output layer named 'log_m500'"):
        models.build("broken", (4, 4, 1))


# --------------------------------------------------------------------------- the small CNNs

def test_basic_cnn_is_thesis_fig10_and_table3():
    m = models.build("basic", (50, 50, 3))
    assert [t.name for t in m.inputs] == ["image", "redshift"]
    assert m.get_layer("basic_max_pool").output.shape[1:] == (12, 12, 20)   # thesis Sect. 2.4.1
    assert m.get_layer("flatten").output.shape[1:] == (2880,)
    assert m.get_layer("concat_redshift").output.shape[1:] == (2881,)
    assert [m.get_layer(f"head_dense_{i}").units for i in (1, 2)] == [100, 100]
    assert m.output.shape[1:] == (1,) and m.layers[-1].name == "log_m500"
    # hand count: conv 2x2x3x10+10, conv 2x2x10x20+20, 2881x100+100, 100x100+100, 100+1
    assert models.count_params(m) == 130 + 820 + 288_200 + 10_100 + 101 == 299_351
    assert abs(299_351 / 1e6 / thesis.TABLE3["basic"]["params_m"] - 1) < 0.005
    assert models.count_params(m, trainable=False) == 299_351
    # FLOPs by hand (2 x MACs, bias adds, pooling windows, ReLUs)
    f = models.count_flops(m, (50, 50, 3), breakdown=True)
    assert f["conv"] == 2 * (50 * 50 * 10 * 2 * 2 * 3 + 25 * 25 * 20 * 2 * 2 * 10)
    assert f["dense"] == 2 * (2881 * 100 + 100 * 100 + 100)
    assert f["bias"] == 50 * 50 * 10 + 25 * 25 * 20 + 100 + 100 + 1
    assert f["pool"] == 25 * 25 * 10 * 4 + 12 * 12 * 20 * 4
    assert f["activation"] == 50 * 50 * 10 + 25 * 25 * 20 + 200
    assert f["total"] == models.count_flops(m) == sum(v for k, v in f.items() if k != "total")
    with pytest.raises(InputError, match="built for images of shape"):
        models.count_flops(m, (71, 71, 3))


def test_basic_cnn_would_not_give_12x12x20_when_padded():
    m = models.build("basic", (71, 71, 3))
    assert m.get_layer("basic_max_pool").output.shape[1:] == (17, 17, 20)


def test_krippendorf_baseline_is_the_paper_network():
    m = models.build("krippendorf2023")                      # recipe shape: 50 x 50 x 10
    assert m.input[0].shape[1:] == (50, 50, 10)
    assert m.get_layer("krippendorf_max_pool").output.shape[1:] == (12, 12, 10)
    assert m.output.shape[1:] == (2,)                         # [mean, log variance]
    assert models.count_params(m) == 410 + 410 + 1441 * 100 + 100 + 100 * 100 + 100 + 202
    assert not any("random" in layer.name for layer in m.layers)   # augmentation is the pipeline's
    assert "pipeline" in models.krippendorf2023.__doc__


def test_small_cnns_take_any_band_count_and_size_down_to_4px():
    for shape in [(4, 4, 1), (50, 50, 10), (33, 47, 5)]:
        m = models.build("basic", shape)
        x, _ = _data(2, shape)
        assert m.predict(x, verbose=0).shape == (2, 1)
    with pytest.raises(InputError, match="at least 4 x 4 px"):
        models.build("basic", (3, 3, 3))


def test_head_output_dropout_and_dense_options():
    flat = models.build("basic", (50, 50, 3))
    gap = models.build("basic", (50, 50, 3), head="gap", output="gaussian", dropout=0.3, dense_units=64)
    assert gap.get_layer("global_avg_pool").output.shape[1:] == (20,)
    assert gap.get_layer("head_dropout").rate == pytest.approx(0.3)
    assert gap.output.shape[1:] == (2,)
    assert models.count_params(gap) == 130 + 820 + 21 * 64 + 64 + 64 * 64 + 64 + 130
    assert models.count_params(gap) < models.count_params(flat)
    x, _ = _data(4, (50, 50, 3))
    assert gap.predict({"image": x[0], "redshift": x[1]}, verbose=0).shape == (4, 2)


@pytest.mark.parametrize("options, message", [
    (dict(head="avg"), "head='avg' is not valid; use one of 'flatten', 'gap'"),
    (dict(output="poisson"), "output='poisson' is not valid"),
    (dict(pretrained=True), "unknown option.*pretrained.*valid options: head"),
    (dict(dropout=1.5), r"dropout=1.5 must be in \[0, 1\)"),
    (dict(dense_units=0), "dense_units=0 must be a positive integer"),
    (dict(seed=-1), "seed=-1 must be a non-negative integer"),
    (dict(adapter="yes"), "adapter='yes' must be True or False"),
    (dict(weights="none", adapter=True), "adapter=True only applies to the ImageNet backbones"),
])
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(InputError, match=message):
        models.build("basic", (50, 50, 3), **options)


@pytest.mark.parametrize("shape", [(50, 50), (50, 50, 0), ("a", 50, 3), (50.5, 50, 3)])
def test_bad_input_shapes(shape):
    with pytest.raises(InputError, match="three positive integers"):
        models.build("basic", shape)


def test_no_pretrained_weights_for_the_small_cnns(tmp_path):
    f = tmp_path / "w.h5"
    f.write_bytes(b"x")
    with pytest.raises(InputError, match="no pretrained"):
        models.build("basic", (50, 50, 3), weights=str(f))


def test_seed_gives_the_same_initial_weights():
    def weights(seed, name="basic", shape=(50, 50, 3)):
        return models.build(name, shape, seed=seed, dropout=0.1).get_weights()

    a, b, c = weights(3), weights(3), weights(4)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))
    v1, v2 = weights(7, "vgg16", (32, 32, 3)), weights(7, "vgg16", (32, 32, 3))
    assert all(np.array_equal(u, v) for u, v in zip(v1, v2))


# --------------------------------------------------------------------------- the deep models

@pytest.mark.parametrize("name", ["vgg16", "vgg19", "resnet50v2"])
def test_table3_parameters_of_cheap_deep_models(name):
    m = models.build(name)                                    # recipe: 71 x 71 x 3, Flatten, 512
    assert m.input[0].shape[1:] == (71, 71, 3)
    assert m.get_layer("head_dense_1").units == 512 and m.output.shape[1:] == (1,)
    params_m = models.count_params(m) / 1e6
    assert abs(params_m / thesis.TABLE3[name]["params_m"] - 1) < 0.005   # thesis Table 3


def test_deep_model_any_bands_gap_gaussian_and_forward_pass():
    m = models.build("resnet50v2", (32, 32, 10), head="gap", output="gaussian")
    assert _backbone(m).input.shape[1:] == (32, 32, 10)
    x, _ = _data(2, (32, 32, 10))
    pred = m.predict(x, verbose=0)
    assert pred.shape == (2, 2) and np.all(np.isfinite(pred))


def test_input_too_small_for_the_backbone():
    with pytest.raises(InputError, match=r"too small for 'resnet152'.*at least 32 x 32 px"):
        models.build("resnet152", (31, 50, 3))


def test_weights_from_a_local_file_and_the_clear_errors(tmp_path, monkeypatch):
    src = models.build("vgg16", (32, 32, 3), seed=1)
    path = tmp_path / "vgg16_notop.weights.h5"
    _backbone(src).save_weights(path)
    expected = _backbone(src).get_weights()

    loaded = models.build("vgg16", (32, 32, 3), weights=str(path))
    assert all(np.array_equal(u, v) for u, v in zip(_backbone(loaded).get_weights(), expected))

    # the legacy HDF5 layout of the published ImageNet files loads too
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    legacy = tmp_path / "vgg16_legacy_notop.h5"
    with h5py.File(legacy, "w") as fh:
        legacy_h5_format.save_weights_to_hdf5_group(fh, _backbone(src))
    loaded = models.build("vgg16", (32, 32, 3), weights=legacy)
    assert np.array_equal(_backbone(loaded).get_weights()[0], expected[0])

    # a weights file of another architecture
    with pytest.raises(DataFileError, match=r"does not fit ResNet50 .*notop"):
        models.build("resnet50", (32, 32, 3), weights=str(path))
    # not a weights file at all
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(DataFileError, match="junk.h5' does not fit VGG16"):
        models.build("vgg16", (32, 32, 3), weights=junk)
    # a missing file
    with pytest.raises(DataFileError, match="does not exist.*weights=None"):
        models.build("vgg16", (32, 32, 3), weights=str(tmp_path / "nope.h5"))
    # ImageNet weights need 3 channels or the adapter
    with pytest.raises(InputError, match=r"3 input channels.*10 bands.*adapter=True.*bands='thesis'"):
        models.build("vgg16", (32, 32, 10), weights=str(path))
    adapted = models.build("vgg16", (32, 32, 10), weights=str(path), adapter=True)
    assert adapted.get_layer("band_adapter").output.shape[1:] == (32, 32, 3)
    assert adapted.get_layer("band_adapter").trainable
    assert np.array_equal(_backbone(adapted).get_weights()[0], expected[0])
    # weights="imagenet": only from the local Keras cache, never downloaded
    cache = tmp_path / "cache" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    monkeypatch.setattr(models.registry, "imagenet_weights_file", lambda cls: cache)
    with pytest.raises(DataFileError, match="does not download.*storage.googleapis.com.*vgg16"):
        models.build("vgg16", (32, 32, 3), weights="imagenet")
    cache.parent.mkdir()
    cache.write_bytes(legacy.read_bytes())
    cached = models.build("vgg16", (32, 32, 3), weights="imagenet")
    assert np.array_equal(_backbone(cached).get_weights()[0], expected[0])


def test_imagenet_cache_file_names_are_the_keras_ones():
    assert models.imagenet_weights_file("ResNet50V2").name == \
        "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert models.imagenet_weights_file("EfficientNetB7").name == "efficientnetb7_notop.h5"


# --------------------------------------------------------------------------- losses

def test_gaussian_nll_matches_the_formula_and_is_safe():
    y = np.array([14.0, 13.5, 14.8], dtype="float32")
    pred = np.array([[14.1, -3.0], [13.0, 0.5], [14.8, -1000.0]], dtype="float32")
    got = keras.ops.convert_to_numpy(models.gaussian_nll(y[:, None], pred))
    s = np.clip(pred[:, 1], *models.LOG_VARIANCE_RANGE)
    assert np.allclose(got, 0.5 * (s + (y - pred[:, 0]) ** 2 / np.exp(s)), rtol=1e-5)
    assert np.all(np.isfinite(got))
    wild = np.array([[0.0, 1e6], [0.0, -1e6]], dtype="float32")
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(models.gaussian_nll(np.ones(2), wild))))
    mean, sigma = models.gaussian_mean_sigma(pred)
    assert np.allclose(mean, pred[:, 0]) and np.allclose(sigma, np.exp(0.5 * s))
    assert sigma[2] == pytest.approx(math.exp(-5.0))
    with pytest.raises(InputError, match=r"shape \(N, 2\).*output='gaussian'"):
        models.gaussian_mean_sigma(np.zeros((3, 1)))
    mse = keras.ops.convert_to_numpy(models.mse_of_mean(y, pred))
    assert np.allclose(mse, (y - pred[:, 0]) ** 2)


def test_loss_for_and_one_training_step_with_each_loss():
    assert models.loss_for("nll") is models.gaussian_nll
    assert isinstance(models.loss_for("mse"), keras.losses.MeanSquaredError)
    with pytest.raises(InputError, match="unknown loss 'mae'"):
        models.loss_for("mae")
    for name in ("basic", "krippendorf2023"):
        spec = models.get_spec(name)
        m = models.build(name, seed=0)
        m.compile(optimizer=keras.optimizers.Adam(spec.recipe["lr"]), loss=models.loss_for(spec.recipe["loss"]))
        x, y = _data(8, spec.default_input_shape)
        before = m.evaluate(x, y, verbose=0)
        for _ in range(3):
            loss = m.train_on_batch(x, y)
        assert np.isfinite(loss) and m.evaluate(x, y, verbose=0) < before


# --------------------------------------------------------------------------- FLOPs cross-check

def test_count_flops_agrees_with_tensorflow_profiler():
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the profiler cross-check needs the TensorFlow backend")
    L = keras.layers
    image, z = models.model_inputs((32, 32, 4))
    x = L.Rescaling(1 / 255.0)(image)
    x = L.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    x = L.Add()([x, L.DepthwiseConv2D(3, padding="same")(x)])
    x = L.MaxPooling2D(2)(x)
    x = L.AveragePooling2D(2)(x)
    x = L.SeparableConv2D(6, 3)(x)
    m = keras.Model([image, z], models.regression_head(x, z, head="gap", dense_units=16))
    ours = models.count_flops(m, (32, 32, 4), breakdown=True)

    graph = tf.function(lambda a, b: m([a, b], training=False)).get_concrete_function(
        tf.TensorSpec((1, 32, 32, 4)), tf.TensorSpec((1, 1))).graph
    prof = tf.compat.v1.profiler

    def tf_flops(types):
        opts = (prof.ProfileOptionBuilder(prof.ProfileOptionBuilder.float_operation())
                .with_accounted_types(types).with_empty_output().build())
        return prof.profile(graph, options=opts).total_float_ops

    assert ours["conv"] == tf_flops(["Conv2D", "DepthwiseConv2dNative"])
    assert ours["dense"] == tf_flops(["MatMul"])
    assert ours["pool"] == tf_flops(["MaxPool", "AvgPool", "Mean"])
    # TF does not count activations; biases, BN, Rescaling and Add agree to within a few
    # per-channel ops (TF's graph adds some biases with AddV2 and folds BN constants)
    assert ours["total"] - ours["activation"] == pytest.approx(tf_flops([".*"]), rel=0.01)


# --------------------------------------------------------------------------- tables & CLI

def test_model_table_and_cli(capsys):
    assert all(r["thesis_params_m"] is None for r in models.model_table())       # the library quotes no thesis
    rows = models.model_table(reference_params_m={k: v["params_m"] for k, v in thesis.TABLE3.items()})
    by = {r["name"]: r for r in rows}
    assert by["basic"]["input_shape"] == [50, 50, 3]
    assert by["vgg16"]["input_shape"] == [71, 71, 3]
    assert by["krippendorf2023"]["input_shape"] == [50, 50, 10]
    assert (by["krippendorf2023"]["loss"], by["krippendorf2023"]["output"]) == ("nll", "gaussian")
    assert by["resnet101v2"]["thesis_params_m"] == 51.97 and by["krippendorf2023"]["thesis_params_m"] is None
    text = models.format_model_table(rows)
    assert "ResNet152V2" in text and "71x71x3" in text and "67.63" in text

    counted = models.model_table(input_shape=(16, 16, 3), count_params=True)
    by = {r["name"]: r for r in counted}
    assert by["krippendorf2023"]["params"] == 130 + 410 + (4 * 4 * 10 + 1) * 100 + 100 + 10_100 + 202
    assert by["vgg16"]["params"] is None and "at least 32 x 32 px" in by["vgg16"]["note"]
    text = models.format_model_table(counted)
    assert "n/a" in text and "needs at least 32 x 32 px" in text and "0.03" in text

    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "krippendorf2023" in out and "EfficientNet-B7" in out and "67.63" in out     # the CLI does


def test_table3_function(monkeypatch):
    # the full table is the benchmark's job; here three rows, including the inconsistent one
    monkeypatch.setattr(thesis, "TABLE3", {k: thesis.TABLE3[k] for k in ("basic", "vgg16", "efficientnetb7")})
    rows = {r["name"]: r for r in thesis.table3()}
    assert rows["basic"]["input_shape"] == [50, 50, 3] and rows["vgg16"]["input_shape"] == [71, 71, 3]
    for name in ("basic", "vgg16"):
        assert rows[name]["thesis_consistent"] and abs(rows[name]["rel_diff"]) < 0.005
    b7 = rows["efficientnetb7"]
    assert not b7["thesis_consistent"] and "repeats VGG19" in b7["note"]
    assert b7["params_m"] == pytest.approx(75.58, abs=0.01)
    assert rows["vgg16"]["flops"] > rows["basic"]["flops"] > 0


def test_errors_are_cmlib_errors():
    for exc in (InputError, DataFileError):
        assert issubclass(exc, CmlibError)
