"""The small CNNs: the thesis's basic CNN and the published baseline of Krippendorf et al. (2023)."""
from __future__ import annotations

from ..errors import InputError
from .layers import _keras, model_inputs, regression_head
from .recipes import BASIC_RECIPE, KRIPPENDORF_RECIPE
from .registry import register


def _reject_pretraining(name: str, weights, adapter: bool) -> None:
    if weights is not None:
        raise InputError(f"'{name}' has no pretrained (ImageNet) weights; leave weights=None "
                         "(train from scratch) or choose a keras.applications model")
    if adapter:
        raise InputError(f"adapter=True only applies to the ImageNet backbones; '{name}' takes "
                         "any band count directly: leave adapter=False")


def _basic_convolutions(image, filters: tuple[int, int], name: str):
    """Two convolutional layers (conv 2x2 'same' + ReLU + pooling), thesis Fig. 10."""
    layers = _keras().layers
    x = layers.Conv2D(filters[0], 2, padding="same", activation="relu", name=f"{name}_conv1")(image)
    x = layers.AveragePooling2D(2, name=f"{name}_avg_pool")(x)
    x = layers.Conv2D(filters[1], 2, padding="same", activation="relu", name=f"{name}_conv2")(x)
    return layers.MaxPooling2D(2, name=f"{name}_max_pool")(x)


@register(
    "basic", display_name="Basic CNN", family="basic",
    reference="Heim (2023), Sect. 2.4.1, Figs. 10 and 12; after Krippendorf et al. (2023; A&A 682, A132, 2024)",
    recipe=BASIC_RECIPE, min_size=4,
    description="2 conv layers (2x2, 10 and 20 filters; avg then max pooling) -> (12, 12, 20) "
                "-> Flatten 2880 + z -> Dense 100 -> Dense 100 -> 1",
)
def basic_cnn(input_shape, *, head="flatten", output="point", weights=None, adapter=False,
              dropout=0.0, dense_units=100, seed=None):
    """The thesis's basic CNN (Sect. 2.4.1, Figs. 10 and 12; Table 3: 0.30 M parameters).

    Conv2D(10, 2x2, 'same', ReLU) -> AveragePooling 2x2 -> Conv2D(20, 2x2,
    'same', ReLU) -> MaxPooling 2x2 -> (12, 12, 20) for a 50 x 50 input ->
    Flatten (2880) -> concatenate z (2881) -> Dense 100 ReLU -> Dense 100 ReLU
    -> Dense 1.

    The thesis gives neither the kernel size nor the first layer's filter
    count.  cmlib takes the 2x2 'same' kernels of Krippendorf et al. (2023)
    and 10 then 20 filters (the second count is fixed by the (12, 12, 20)
    output).  For 3 bands this gives 130 + 820 + 288 200 + 10 100 + 101 =
    299 351 trainable parameters = 0.30 M, the thesis's Table 3 value.  Only a
    50 x 50 input gives the thesis's (12, 12, 20): a 71 x 71 padded input would
    give (17, 17, 20).
    """
    _reject_pretraining("basic", weights, adapter)
    keras = _keras()
    image, redshift = model_inputs(input_shape)
    x = _basic_convolutions(image, (10, 20), "basic")
    out = regression_head(x, redshift, head=head, dense_units=dense_units, n_dense=2,
                          dropout=dropout, output=output, seed=seed)
    return keras.Model([image, redshift], out, name="basic")


@register(
    "krippendorf2023", display_name="Krippendorf et al. (2023)", family="baseline",
    reference="Krippendorf et al. (2023), A&A 682, A132, 2024",
    recipe=KRIPPENDORF_RECIPE, min_size=4,
    description="2 conv layers (2x2, 10 filters each; avg then max pooling) -> Flatten + z "
                "-> Dense 100 -> Dense 100 -> (mean, log variance)",
)
def krippendorf2023(input_shape, *, head="flatten", output="gaussian", weights=None,
                    adapter=False, dropout=0.0, dense_units=100, seed=None):
    """The published eFEDS baseline of Krippendorf et al. (2023).

    Conv2D(10, 2x2, ReLU) -> AveragePooling 2x2 -> Conv2D(10, 2x2, ReLU) ->
    MaxPooling 2x2 -> Flatten -> concatenate z -> Dense 100 ReLU -> Dense 100
    ReLU -> Dense 2 = [mean, ln sigma^2] trained with a Gaussian negative
    log-likelihood (:func:`gaussian_nll`).  Input: all ten bands, 50 x 50.

    The paper's random flips and rotations act on the training images only;
    cmlib does them in the data pipeline (recipe ``augment="flip-rot90"``),
    not as layers, so the model itself is deterministic and identical at
    training and inference time.  The paper publishes no code: 'same' padding
    is assumed, as the shapes of thesis Fig. 10 (12 x 12 after two 2x2
    poolings of a 50 px image; 'valid' padding would give 11 x 11) require,
    and the variance is predicted as its logarithm (positive by construction).
    """
    _reject_pretraining("krippendorf2023", weights, adapter)
    keras = _keras()
    image, redshift = model_inputs(input_shape)
    x = _basic_convolutions(image, (10, 10), "krippendorf")
    out = regression_head(x, redshift, head=head, dense_units=dense_units, n_dense=2,
                          dropout=dropout, output=output, seed=seed)
    return keras.Model([image, redshift], out, name="krippendorf2023")
