"""Counting a model: trainable parameters and floating-point operations per image (thesis Table 3)."""
from __future__ import annotations

import math
import warnings
from typing import Sequence

from ..errors import InputError
from .layers import _keras


def count_params(model, trainable: bool = True) -> int:
    """Number of trainable parameters (``trainable=True``) or of all parameters (``False``)."""
    weights = model.trainable_weights if trainable else model.weights
    return int(sum(math.prod(int(d) for d in w.shape) for w in weights))




_ZERO_FLOP_LAYERS = {
    "InputLayer", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
    "Cropping3D", "Flatten", "Reshape", "Permute", "RepeatVector", "Concatenate", "Dropout",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "Identity", "Masking", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomCrop",
    "ActivityRegularization",
}
_ACTIVATION_LAYERS = {"Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax"}
_MERGE_LAYERS = {"Add": -1, "Subtract": -1, "Multiply": -1, "Maximum": -1, "Minimum": -1,
                 "Average": 0}


def _n(shape) -> int:
    return int(math.prod(int(d) for d in shape[1:]))  # drop the batch axis


def _has_activation(layer) -> bool:
    act = getattr(layer, "activation", None)
    return act is not None and getattr(act, "__name__", "linear") != "linear"


def _layer_flops(layer, in_shapes: list, out_shape) -> dict[str, int] | None:
    """FLOPs of one call of ``layer`` per image, by category; None if the layer is unknown."""
    cls = type(layer).__name__
    n_out = _n(out_shape)
    f = dict.fromkeys(("conv", "dense", "bias", "pool", "norm", "merge", "activation"), 0)
    if cls in _ZERO_FLOP_LAYERS:
        return f
    if cls in ("Conv1D", "Conv2D", "Conv3D"):
        cin = int(in_shapes[0][-1])
        f["conv"] = 2 * n_out * math.prod(layer.kernel_size) * (cin // layer.groups)
    elif cls in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        f["conv"] = 2 * _n(in_shapes[0]) * math.prod(layer.kernel_size) * layer.filters
    elif cls in ("DepthwiseConv1D", "DepthwiseConv2D"):
        f["conv"] = 2 * n_out * math.prod(layer.kernel_size)
    elif cls in ("SeparableConv1D", "SeparableConv2D"):
        spatial_out = n_out // int(out_shape[-1])
        mid = int(in_shapes[0][-1]) * layer.depth_multiplier
        f["conv"] = 2 * spatial_out * mid * (math.prod(layer.kernel_size) + int(out_shape[-1]))
    elif cls == "Dense":
        f["dense"] = 2 * _n(in_shapes[0]) * layer.units
    elif cls in ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
                 "AveragePooling2D", "AveragePooling3D"):
        f["pool"] = n_out * math.prod(layer.pool_size)
    elif cls.startswith("Global") and "Pooling" in cls:
        f["pool"] = _n(in_shapes[0])
    elif cls in ("BatchNormalization", "Normalization", "Rescaling"):
        f["norm"] = 2 * n_out  # inference: x * scale + offset
    elif cls in _ACTIVATION_LAYERS:
        f["activation"] = n_out
    elif cls in _MERGE_LAYERS:
        f["merge"] = n_out * (len(in_shapes) + _MERGE_LAYERS[cls])
    else:
        return None
    if getattr(layer, "use_bias", False) and cls not in _MERGE_LAYERS:
        f["bias"] = n_out
    if _has_activation(layer):
        f["activation"] += n_out
    return f


def _walk_flops(model, total: dict[str, int], unknown: set[str]) -> None:
    keras = _keras()
    graph = model
    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise InputError(f"the Sequential model '{model.name}' is not built; call it on an input "
                             "or give it an Input layer before counting FLOPs")
    nodes_by_depth = getattr(graph, "_nodes_by_depth", None)
    if nodes_by_depth is None:
        raise InputError(f"count_flops needs a functional Keras model; '{model.name}' "
                         f"({type(model).__name__}) has no layer graph")
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            layer = node.operation
            if node.is_input:
                continue
            if isinstance(layer, keras.Model):
                _walk_flops(layer, total, unknown)
                continue
            in_shapes = [t.shape for t in node.input_tensors]
            out_shape = node.outputs[0].shape
            f = _layer_flops(layer, in_shapes, out_shape)
            if f is None:
                unknown.add(type(layer).__name__)
                continue
            for k, v in f.items():
                total[k] += int(v)


def count_flops(model, input_shape: Sequence[int] | None = None, *,
                breakdown: bool = False) -> int | dict[str, int]:
    """Floating-point operations of one forward pass per image, counted layer by layer.

    Convention (that of TensorFlow's profiler, so the two can be compared):

    ``conv``   Conv/DepthwiseConv/SeparableConv: 2 x multiply-accumulates (MACs)
    ``dense``  Dense: 2 x MACs
    ``bias``   one addition per output element of a layer with a bias
    ``pool``   max/average pooling: one operation per window element per output;
               global pooling: one per input element
    ``norm``   BatchNormalization (inference), Normalization, Rescaling: 2 per element
    ``merge``  Add/Subtract/Multiply/Maximum/Minimum: (inputs - 1) per output element
    ``activation``  one per element for every non-linear activation (ReLU, swish,
               sigmoid...): a lower bound for the transcendental ones; TensorFlow's
               profiler does not count activations at all

    Padding, reshaping, concatenation and (inference-time) dropout cost nothing.
    Nested models (the keras.applications backbones) are walked recursively.
    The total is per image (the batch axis is dropped).

    Parameters
    ----------
    model : keras.Model
        A functional (or built Sequential) model.
    input_shape : (H, W, C), optional
        The image shape the count is for; must be the shape the model was built
        with (FLOPs are counted from the layer graph).
    breakdown : bool
        Return the categories above (and ``"total"``) instead of the total.

    Warns
    -----
    UserWarning
        Listing layer types the counter does not know (counted as 0).
    """
    if input_shape is not None:
        built = None
        for t in getattr(model, "inputs", None) or []:
            if getattr(t, "name", "").split(":")[0] == "image" or len(model.inputs) == 1:
                built = tuple(t.shape[1:])
        wanted = tuple(int(v) for v in input_shape)
        if built is not None and built != wanted:
            raise InputError(f"the model was built for images of shape {built}, not {wanted}; "
                             f"build it with input_shape={wanted} to count its FLOPs")
    total = dict.fromkeys(("conv", "dense", "bias", "pool", "norm", "merge", "activation"), 0)
    unknown: set[str] = set()
    _walk_flops(model, total, unknown)
    if unknown:
        warnings.warn(f"count_flops: layer types not counted (0 FLOPs assumed): "
                      f"{', '.join(sorted(unknown))}", stacklevel=2)
    total["total"] = sum(total.values())
    return total if breakdown else total["total"]
