"""The deep architectures of the thesis from ``keras.applications``: VGG, ResNet (v1, v2), EfficientNet.

Each is the Keras application with ``include_top=False`` and the thesis's head
(Sect. 3.3). cmlib never downloads weights: ImageNet weights are read from a
local file.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

from ..errors import DataFileError, InputError
from .layers import _keras, model_inputs, regression_head
from .recipes import THESIS_DEEP_RECIPE, make_recipe  # noqa: F401  (make_recipe: used in the docstring)
from .registry import register
from .weights import imagenet_weights_file


def _backbone(class_name: str, input_shape: tuple[int, int, int], weights: str | None):
    """``keras.applications.<class_name>(include_top=False)``, weights loaded from a local file."""
    keras = _keras()
    app = getattr(keras.applications, class_name)
    with warnings.catch_warnings():
        # 10-band inputs are deliberate ("usually expects 1 or 3 input channels"), and a
        # mismatching .weights.h5 file emits one warning per layer before the ValueError.
        warnings.filterwarnings("ignore", message=r".*input channels", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"Skipping nested container", category=UserWarning)
        if weights is None:
            return app(include_top=False, weights=None, input_shape=input_shape)
        try:
            return app(include_top=False, weights=str(weights), input_shape=input_shape)
        except (ValueError, KeyError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataFileError(
                f"the weights file '{weights}' does not fit {class_name} (include_top=False): "
                f"{first[:300]}. Pass the ImageNet 'notop' file of this architecture "
                f"({imagenet_weights_file(class_name).name}) or weights=None."
            ) from None


def application_builder(class_name: str, *, name: str | None = None) -> Callable[..., Any]:
    """A builder for ``keras.applications.<class_name>`` with the thesis head.

    image -> [adapter: Conv2D(3, 1x1)] -> backbone (include_top=False) ->
    :func:`regression_head` (Flatten or GAP, + z, Dense ``dense_units`` ReLU,
    output).  ``weights`` is a local ``include_top=False`` file (cmlib never
    downloads).  EfficientNet adds its ImageNet input rescaling layer only for
    ``weights="imagenet"`` inside Keras, so with a weights *path* its inputs are
    scaled by 1/255 but not by the ImageNet standard deviations; for photon-count
    images (not RGB) the ImageNet statistics do not apply anyway.

    Register another keras.applications model in one line::

        register("densenet121", family="densenet", reference="Huang et al. (2017)",
                 recipe=make_recipe(), description="DenseNet-121 + thesis head"
                 )(application_builder("DenseNet121"))
    """
    model_name = name or class_name.lower()

    def builder(input_shape, *, head="flatten", output="point", weights=None, adapter=False,
                dropout=0.0, dense_units=512, seed=None):
        keras = _keras()
        if not hasattr(keras.applications, class_name):
            raise InputError(f"keras.applications has no '{class_name}' in Keras {keras.__version__}")
        h, w, c = (int(v) for v in input_shape)
        if weights is not None and c != 3 and not adapter:
            raise InputError(
                f"ImageNet weights need 3 input channels, but the image has {c} bands; "
                "pass adapter=True (a trainable 1x1 convolution maps the bands to 3 channels) "
                "or select 3 bands (bands='thesis')"
            )
        image, redshift = model_inputs(input_shape)
        x = image
        if adapter:
            x = keras.layers.Conv2D(3, 1, name="band_adapter")(x)
        backbone = _backbone(class_name, (h, w, 3 if adapter else c), weights)
        features = backbone(x)
        out = regression_head(features, redshift, head=head, dense_units=dense_units, n_dense=1,
                              dropout=dropout, output=output, seed=seed)
        return keras.Model([image, redshift], out, name=model_name)

    builder.__name__ = f"build_{model_name}"
    builder.__qualname__ = builder.__name__
    builder.__doc__ = (f"keras.applications.{class_name}(include_top=False) + the thesis head "
                       "(see :func:`application_builder`).")
    builder.keras_class = class_name  # type: ignore[attr-defined]
    return builder


_VGG_REF = "Simonyan & Zisserman (2015), ICLR, arXiv:1409.1556"
_RESNET_REF = "He et al. (2016a), CVPR, arXiv:1512.03385"
_RESNET_V2_REF = "He et al. (2016b), ECCV, arXiv:1603.05027 (pre-activation)"
_EFFNET_REF = "Tan & Le (2019), ICML, arXiv:1905.11946"

#: The thesis's deep models (Sect. 2.4.2, 3.3): name -> (keras class, display name, family, reference,
#: description).
THESIS_APPLICATIONS = {
    "vgg16": ("VGG16", "VGG16", "vgg", _VGG_REF, "13 conv layers (3x3) in 5 blocks"),
    "vgg19": ("VGG19", "VGG19", "vgg", _VGG_REF, "16 conv layers (3x3) in 5 blocks"),
    "resnet50": ("ResNet50", "ResNet50", "resnet", _RESNET_REF, "50-layer residual network (bottleneck blocks)"),
    "resnet50v2": ("ResNet50V2", "ResNet50V2", "resnet-v2", _RESNET_V2_REF, "50-layer pre-activation ResNet"),
    "resnet101": ("ResNet101", "ResNet101", "resnet", _RESNET_REF, "101-layer residual network"),
    "resnet101v2": ("ResNet101V2", "ResNet101V2", "resnet-v2", _RESNET_V2_REF, "101-layer pre-activation ResNet"),
    "resnet152": ("ResNet152", "ResNet152", "resnet", _RESNET_REF, "152-layer residual network"),
    "resnet152v2": ("ResNet152V2", "ResNet152V2", "resnet-v2", _RESNET_V2_REF, "152-layer pre-activation ResNet"),
    "efficientnetb7": ("EfficientNetB7", "EfficientNet-B7", "efficientnet", _EFFNET_REF,
                       "compound-scaled MBConv network (contains Rescaling(1/255) and "
                       "Normalization layers)"),
}

for _name, (_cls, _display, _family, _ref, _desc) in THESIS_APPLICATIONS.items():
    register(_name, display_name=_display, family=_family, reference=_ref, recipe=THESIS_DEEP_RECIPE, min_size=32,
             description=f"keras.applications.{_cls} (include_top=False), {_desc}; "
                         "Flatten + z -> Dense 512 -> 1")(application_builder(_cls, name=_name))
del _name, _cls, _display, _family, _ref, _desc
