"""Which remedy keeps VGG16's image path alive?  A short probe of the known remedies of dead ReLUs.

VGG16's stored fair-protocol run (AdamW 1e-3, warm-up and cosine over 30 epochs) predicts from
the redshift alone: from epoch 4 on its first layer gets no gradient at all and about 60 % of its
ReLU channels never fire (issue 13, the VGG16 page's diagnosis).  The remedies of dead ReLUs are a
smaller learning rate, He initialisation and batch normalisation.  A converged run of each costs
an hour or more on two CPU cores, so this script first probes them cheaply: the fair recipe on the
first ``--clusters`` clusters for ``--epochs`` epochs (the warm-up ends at epoch 3, where the full
run died), one seed, and reads the per-epoch diagnostics every run records
(:mod:`cmlib.train.diagnostics`): the first layer's gradient norm and the fraction of dead ReLUs.

Variants (each at lr 1e-3, the fair recipe, and 1e-4):

* ``vgg16`` -- ``keras.applications.VGG16`` as the thesis used it (Glorot-uniform kernels);
* ``vgg16-he`` -- the same layers with He-normal kernels (He et al. 2015, ICCV, arXiv:1502.01852);
* ``vgg16-bn`` -- BatchNorm after every convolution (Ioffe & Szegedy 2015, arXiv:1502.03167), as
  torchvision's ``vgg16_bn``.

The probe is too short to say whether a variant learns from the images (that needs the converged
run); it says which variants keep gradients flowing through the first layer, the precondition.
The runs go to ``--runs-dir`` (resumable, reused when finished); the summary to
``benchmarks/results/vgg_remedies.json``.

    python benchmarks/vgg_remedies.py                  # about 30 min on 2 CPU cores
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmlib import metrics as M  # noqa: E402
from cmlib._io import atomic_write_json  # noqa: E402
from cmlib.book.profiles import fair_deep  # noqa: E402
from cmlib.models import register  # noqa: E402
from cmlib.models.layers import _keras, model_inputs, regression_head  # noqa: E402
from cmlib.models.recipes import THESIS_DEEP_RECIPE  # noqa: E402

#: VGG16's convolutional blocks (Simonyan & Zisserman 2015, configuration D): convolutions per block, filters.
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
VARIANTS = {"vgg16": "keras.applications.VGG16 (Glorot-uniform kernels, as the thesis)",
            "vgg16-he": "VGG16 with He-normal kernels",
            "vgg16-bn": "VGG16 with BatchNorm after every convolution"}
LRS = (1e-3, 1e-4)


def vgg16_variant(batch_norm: bool, he: bool):
    """A builder of VGG16's convolutional part (the layers of keras.applications.VGG16) with the thesis head,
    He-normal kernels and/or BatchNorm before each ReLU."""
    def build(input_shape, *, head="flatten", output="point", weights=None, adapter=False, dropout=0.0,
              dense_units=512, seed=None):
        keras = _keras()
        layers = keras.layers
        image, redshift = model_inputs(input_shape)
        x = image
        for b, (n, filters) in enumerate(VGG16_BLOCKS, 1):
            for c in range(1, n + 1):
                init = (keras.initializers.HeNormal(seed=seed) if he else keras.initializers.GlorotUniform(seed=seed))
                x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, kernel_initializer=init,
                                  activation=None if batch_norm else "relu", name=f"block{b}_conv{c}")(x)
                if batch_norm:
                    x = layers.BatchNormalization(name=f"block{b}_bn{c}")(x)
                    x = layers.ReLU(name=f"block{b}_relu{c}")(x)
            x = layers.MaxPooling2D(2, 2, name=f"block{b}_pool")(x)
        out = regression_head(x, redshift, head=head, dense_units=dense_units, n_dense=1, dropout=dropout,
                              output=output, seed=seed)
        return keras.Model([image, redshift], out, name="vgg16_variant")
    return build


def _register() -> None:
    for name, bn, he in (("vgg16-he", False, True), ("vgg16-bn", True, False)):
        register(name, display_name=name, family="vgg", reference="benchmarks/vgg_remedies.py",
                 recipe=THESIS_DEEP_RECIPE, description=VARIANTS[name], overwrite=True)(vgg16_variant(bn, he))


def summarise(run) -> dict:
    h = run.history
    g = np.asarray(h["grad_norm_first"], dtype=float)
    dead = np.asarray(h["dead_relu"], dtype=float)
    test = run.predictions["test"]
    return {"model": run.config["model"], "lr": run.config["lr"], "epochs": len(g),
            "loss": [round(float(v), 5) for v in h["loss"]], "val_loss": [round(float(v), 5) for v in h["val_loss"]],
            "grad_norm_first": [float(v) for v in g], "dead_relu": [round(float(v), 4) for v in dead],
            "first_epoch_zero_gradient": M.first_epoch_without_gradient(h),
            "dead_relu_last": float(dead[-1]), "grad_norm_first_last": float(g[-1]),
            "image_path_alive": bool(g[-1] > 0 and dead[-1] < 0.5),
            "test_std_x": float(np.std(test.x)), "n_test": int(test.x.size),
            "seconds": float(h["elapsed_s"][-1])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "data" / "efeds_mock.h5"))
    ap.add_argument("--runs-dir", default=str(ROOT / "runs" / "vgg_remedies"))
    ap.add_argument("--clusters", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "vgg_remedies.json"))
    args = ap.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"error: no data file {args.data}; make it with `make data` (or pass --data)", file=sys.stderr)
        return 2
    if args.epochs < 4:
        print("error: --epochs must be >= 4: the fair recipe's warm-up ends at epoch 3, where VGG16 dies",
              file=sys.stderr)
        return 2
    from cmlib.train import train_seeds

    _register()
    rows = []
    load = os.getloadavg()
    for lr in LRS:
        for name in VARIANTS:
            opts = dict(fair_deep("vgg16"), lr=lr, max_clusters=args.clusters)
            (res,) = train_seeds(name, args.data, epochs=args.epochs, seeds=[0], runs_dir=args.runs_dir,
                                 keep_models=False, **opts)
            rows.append(dict(summarise(res.run), variant=VARIANTS[name]))
    print(f"{'model':<10} {'lr':>7} {'first-layer grad (last)':>24} {'zero from':>9} {'dead ReLUs':>10} "
          f"{'val loss':>9} {'test std(x)':>11}")
    for r in rows:
        print(f"{r['model']:<10} {r['lr']:>7.0e} {r['grad_norm_first_last']:>24.2e} "
              f"{r['first_epoch_zero_gradient'] or '-':>9} {r['dead_relu_last']:>10.2f} {r['val_loss'][-1]:>9.4f} "
              f"{r['test_std_x']:>11.3f}")
    result = {"benchmark": "vgg_remedies", "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "clusters": args.clusters, "epochs": args.epochs, "recipe": "fair (cmlib.book.profiles.fair_deep)",
              "load_average_at_start": [round(v, 2) for v in load], "rows": rows,
              "note": ("a probe of the image path (first-layer gradient, dead ReLUs), too short to judge learning; "
                       "alive: first-layer gradient > 0 and < 50 % dead ReLUs at the last epoch")}
    if any(math.isnan(r["dead_relu_last"]) for r in rows):
        print("warning: a variant recorded no dead-ReLU fraction", file=sys.stderr)
    atomic_write_json(Path(args.out), result)
    print(f"wrote {Path(args.out).relative_to(ROOT) if Path(args.out).is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
