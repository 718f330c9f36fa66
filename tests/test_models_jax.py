"""The model zoo on the JAX backend: same builders, forward pass and a training step.

Keras fixes its backend at import, so the check runs in a subprocess with
``KERAS_BACKEND=jax``.  Skipped where JAX is not installed.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import keras
    from cmlib import models

    assert keras.backend.backend() == "jax", keras.backend.backend()
    rng = np.random.default_rng(0)
    out = {"backend": keras.backend.backend()}
    for name, shape in [("basic", None), ("krippendorf2023", None), ("resnet50v2", (32, 32, 3))]:
        spec = models.get_spec(name)
        shape = shape or spec.default_input_shape
        m = models.build(name, shape, seed=0)
        m.compile(optimizer=keras.optimizers.Adam(spec.recipe["lr"]),
                  loss=models.loss_for(spec.recipe["loss"]))
        x = [rng.poisson(1.0, (4,) + tuple(shape)).astype("float32"),
             rng.uniform(0.05, 1.2, (4, 1)).astype("float32")]
        y = rng.uniform(13, 15, 4).astype("float32")
        initial = m.get_weights()
        pred = m.predict(x, verbose=0)
        loss = float(m.train_on_batch(x, y))
        again = models.build(name, shape, seed=0).get_weights()
        out[name] = {"shape": list(pred.shape), "finite": bool(np.isfinite(pred).all()),
                     "loss": loss, "params": models.count_params(m),
                     "same_init": all(np.array_equal(a, b) for a, b in zip(initial, again)),
                     "updated": not all(np.array_equal(a, b) for a, b in zip(initial, m.get_weights()))}
    # the per-epoch diagnostics on this backend: no gradient norms (TensorFlow only), nothing changed
    from cmlib.train.diagnostics import diagnose, relu_probe
    before = [np.array(v) for v in m.non_trainable_variables]
    diag = diagnose(m, {"image": x[0], "redshift": x[1]}, y, relu_probe(m))
    out["diag"] = {"mse_finite": bool(np.isfinite(diag["mse_train_eval"])),
                   "grad_nan": bool(np.isnan(diag["grad_norm"])), "dead_relu": diag["dead_relu"],
                   "unchanged": all(np.array_equal(a, np.array(v)) for a, v in zip(before, m.non_trainable_variables))}
    nll = keras.ops.convert_to_numpy(models.gaussian_nll(np.array([14.0]), np.array([[14.0, 0.0]])))
    out["nll_at_mean"] = float(nll[0])
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.slow
def test_models_build_and_train_on_jax():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    res = json.loads(line[len("RESULT "):])
    assert res["backend"] == "jax"
    assert res["basic"]["shape"] == [4, 1] and res["basic"]["params"] == 299_351
    assert res["krippendorf2023"]["shape"] == [4, 2]
    assert res["resnet50v2"]["shape"] == [4, 1]
    for name in ("basic", "krippendorf2023", "resnet50v2"):
        assert res[name]["finite"] and res[name]["same_init"] and res[name]["updated"]
        assert math.isfinite(res[name]["loss"])
    assert res["nll_at_mean"] == pytest.approx(0.0)
    # diagnostics of the last model (ResNet50V2: BatchNorm and ReLUs in a nested backbone) on JAX
    assert res["diag"]["mse_finite"] and res["diag"]["grad_nan"] and res["diag"]["unchanged"]
    assert 0.0 <= res["diag"]["dead_relu"] <= 1.0
