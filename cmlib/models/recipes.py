"""The training recipes of the thesis (Table 4) and of Krippendorf et al. (2023).

A recipe (:class:`cmlib.config.Recipe`) is what ``cmlib train --model NAME``
starts from; :func:`make_recipe` derives a new one, validated field by field.
"""
from __future__ import annotations

from typing import Any

from ..recipe import Recipe


def make_recipe(base: Recipe | None = None, **changes: Any) -> Recipe:
    """A validated recipe: ``base`` (default :data:`THESIS_DEEP_RECIPE`) with ``changes``.

    >>> make_recipe(BASIC_RECIPE, lr=5e-4).lr
    0.0005

    Raises :class:`~cmlib.errors.InputError` for an unknown option or a bad value.
    """
    return (THESIS_DEEP_RECIPE if base is None else base).replace(**changes)


#: Thesis Sect. 3.3 and Table 4, for every keras.applications model: bands 2-4,
#: padded to 71 x 71, raw counts, MSE, Adam lr 1e-3, batch 32, 4000 epochs, no
#: early stopping, Flatten head with Dense 512.  The augmentation (random flips)
#: is the thesis pipeline's (Sect. 3.2, Fig. 21).  Two cmlib choices differ from the
#: thesis and are recorded with every run: the output starts at the mean training label
#: (``output_bias="mean"``; the thesis's zero start leaves a from-scratch model 14 dex
#: away, which Adam walks at ~1e-3 dex per step: irrelevant over 4000 epochs, the whole
#: budget of a short CPU run), and the arithmetic is bfloat16 where the hardware has
#: bf16 units (``precision="auto"``; float32 elsewhere).
THESIS_DEEP_RECIPE = Recipe(
    bands="thesis", pad="thesis", scaling="raw", augment="flip", loss="mse", output="point",
    optimizer="adam", lr=1e-3, lr_schedule="constant", batch_size=32, early_stopping=0,
    reference_epochs=4000, head="flatten", dense_units=512, output_bias="mean", precision="auto",
)

#: The thesis's basic CNN (Sect. 2.4.1, 3.3, 4.1): bands 2-4 at 50 x 50 (no padding:
#: only then is the conv output (12, 12, 20)), two dense layers of 100.  The thesis
#: stopped at the validation minimum (~90 epochs, Fig. 22) and trains it "for a few
#: hundred epochs": cmlib uses 300 epochs at most with early stopping after 20
#: epochs without improvement (the thesis stopped 15 epochs after the minimum, Table 5's
#: footnote; patience 20 = 22 % of the 90-epoch minimum rides out the epoch-to-epoch
#: noise of the validation loss seen in Fig. 22, and the reported epoch is the minimum
#: either way).
#: Its output starts at zero and it computes in float32, as in the thesis (a model this
#: small gains nothing from bf16: its step is bound by memory traffic, not arithmetic).
BASIC_RECIPE = THESIS_DEEP_RECIPE.replace(
    pad="none", early_stopping=20, reference_epochs=300, dense_units=100, output_bias="zero",
    precision="float32",
)

#: Krippendorf et al. (2023): all 10 bands at 50 x 50, random flips and 90-degree
#: rotations, Gaussian NLL, Adam lr 1e-4, batch 100, about 500 epochs.  The paper
#: gives no stopping rule; cmlib stops after 50 epochs without improvement of the
#: validation loss (at lr 1e-4 the loss moves ~10x slower than at the thesis's
#: 1e-3, hence a longer patience than the basic CNN's 20).
KRIPPENDORF_RECIPE = Recipe(
    bands="all", pad="none", scaling="raw", augment="flip-rot90", loss="nll", output="gaussian",
    lr=1e-4, batch_size=100, early_stopping=50, reference_epochs=500, head="flatten",
    dense_units=100, output_bias="zero", precision="float32",
)
