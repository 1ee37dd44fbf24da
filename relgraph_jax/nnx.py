"""flax.nnx graph layers: the same MaskedDense, MaskedConv and DepthwiseConv as layers.py.

Same math (relgraph_jax.ops), same weight names and layouts: "kernel" + "mask" for
impl="mask", "blocks" for impl="blocks", "kernel" + "reads", "out_node", "out_slot" for
impl="gather" (dense only), "bias" when used. `load_linen_variables` copies a
linen layer's variables into an nnx layer and `linen_variables` gives them back, so both
front ends can run from the same arrays. The mask is a `Mask` variable, not an
`nnx.Param`, so optimisers built on `nnx.Param` leave it alone.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.linen import dtypes

from relgraph_jax import ops, relational


class Mask(nnx.Variable):
    """A graph layer's fixed 0/1 (in, out) weight mask or gather tables: state, never trained."""


class _GraphLayer(nnx.Module):
    """Weights of a graph layer over a kernel window (() for dense, (kh, kw) for conv)."""

    def __init__(self, in_features: int, out_features: int, window: tuple, graph, impl: str,
                 partition: str, use_bias: bool, dtype, param_dtype, kernel_init, bias_init,
                 rngs: nnx.Rngs, impls=ops.IMPLS, degree_slots: Optional[int] = None):
        layer = type(self).__name__
        ops.check_channels(in_features, "in_features", layer)
        ops.check_channels(out_features, "out_features", layer)
        ops.check_impl(impl, layer, impls)
        relational.check_partition(partition, layer)
        self.layout = ops.graph_layout(impl, graph, in_features, out_features, partition,
                                       degree_slots=degree_slots, layer=layer)
        self.impl = impl
        self.dtype = dtype
        setattr(self, self.layout.weight,
                nnx.Param(self.layout.init(rngs.params(), window, kernel_init, param_dtype)))
        for name, array in self.layout.arrays().items():
            setattr(self, name, Mask(jnp.asarray(array)))
        self.bias = nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias else None

    def _weights(self, x):
        """(x, weights, static, bias) promoted to the computation dtype."""
        weights = getattr(self, self.layout.weight)[...]
        static = self.layout.static({name: getattr(self, name)[...] for name in self.layout.arrays()})
        bias = None if self.bias is None else self.bias[...]
        x, weights, bias = dtypes.promote_dtype(x, weights, bias, dtype=self.dtype)
        return x, weights, static, bias


class MaskedDense(_GraphLayer):
    """nnx twin of layers.MaskedDense: in_features -> out_features following a relational graph."""

    def __init__(self, in_features: int, out_features: int, graph, *, impl: str = "mask",
                 partition: str = relational.DEFAULT_PARTITION, degree_slots: Optional[int] = None,
                 use_bias: bool = False, dtype: Optional[Any] = None,
                 param_dtype: Any = jnp.float32, kernel_init: Optional[Callable] = None,
                 bias_init: Callable = nnx.initializers.zeros, rngs: nnx.Rngs):
        super().__init__(in_features, out_features, (), graph, impl, partition, use_bias, dtype,
                         param_dtype, kernel_init, bias_init, rngs, degree_slots=degree_slots)

    def __call__(self, x):
        ops.check_input(x, type(self).__name__)
        x, weights, static, bias = self._weights(x)
        y = ops.graph_matmul(self.impl, x, weights, static)
        return y if bias is None else y + bias


class MaskedConv(_GraphLayer):
    """nnx twin of layers.MaskedConv: a 2-D NHWC conv whose channel weights follow a graph."""

    def __init__(self, in_features: int, out_features: int, kernel_size, graph, *, strides=1,
                 padding="SAME", impl: str = "mask", partition: str = relational.DEFAULT_PARTITION,
                 use_bias: bool = False, dtype: Optional[Any] = None, param_dtype: Any = jnp.float32,
                 kernel_init: Optional[Callable] = None, bias_init: Callable = nnx.initializers.zeros,
                 rngs: nnx.Rngs):
        layer = type(self).__name__
        window = ops.pair(kernel_size, "kernel_size", layer)
        self.strides = ops.pair(strides, "strides", layer)
        self.padding = ops.conv_padding(padding, layer)
        super().__init__(in_features, out_features, window, graph, impl, partition, use_bias, dtype,
                         param_dtype, kernel_init, bias_init, rngs, impls=ops.CONV_IMPLS)

    def __call__(self, x):
        if x.ndim < 4:
            raise ValueError(f"{type(self).__name__}: input must be (batch..., H, W, C), got shape {x.shape}")
        x, weights, static, bias = self._weights(x)
        y = ops.graph_conv(self.impl, x, weights, static, self.strides, self.padding)
        return y if bias is None else y + bias


class DepthwiseConv(nnx.Module):
    """nnx twin of layers.DepthwiseConv: dense depthwise 2-D conv, kernel (kh, kw, 1, C)."""

    def __init__(self, features: int, kernel_size, *, strides=1, padding="SAME", use_bias: bool = False,
                 dtype: Optional[Any] = None, param_dtype: Any = jnp.float32,
                 kernel_init: Callable = ops.graph_init(1.0), bias_init: Callable = nnx.initializers.zeros,
                 rngs: nnx.Rngs):
        layer = type(self).__name__
        ops.check_channels(features, "features", layer)
        window = ops.pair(kernel_size, "kernel_size", layer)
        self.strides = ops.pair(strides, "strides", layer)
        self.padding = ops.conv_padding(padding, layer)
        self.dtype = dtype
        self.kernel = nnx.Param(kernel_init(rngs.params(), window + (1, features), param_dtype))
        self.bias = nnx.Param(bias_init(rngs.params(), (features,), param_dtype)) if use_bias else None

    def __call__(self, x):
        bias = None if self.bias is None else self.bias[...]
        x, kernel, bias = dtypes.promote_dtype(x, self.kernel[...], bias, dtype=self.dtype)
        y = ops.conv2d(x, kernel, self.strides, self.padding, feature_group_count=kernel.shape[-1])
        return y if bias is None else y + bias


_WEIGHTS = {"params": ("kernel", "blocks", "bias"),
            "masks": ("mask", "reads", "out_node", "out_slot")}


def load_linen_variables(layer: nnx.Module, variables) -> nnx.Module:
    """Copy a linen layer's variables ({"params": ..., "masks": ...}) into the nnx twin, in place.

    Raises ValueError, leaving the layer as it was, when a weight is missing or its shape
    differs, or when the variables' mask or gather tables are of another graph than the
    layer's (their weights would be wrong for it).
    """
    pairs = []
    for collection, names in _WEIGHTS.items():
        for name in names:
            target = getattr(layer, name, None)
            if target is None:
                continue
            source = variables.get(collection, {}).get(name)
            if source is None:
                raise ValueError(f"{type(layer).__name__}: variables lack {collection}/{name}")
            if tuple(source.shape) != tuple(target.shape):
                raise ValueError(f"{type(layer).__name__}: {collection}/{name} has shape {tuple(source.shape)}, "
                                 f"the layer needs {tuple(target.shape)}")
            if collection == "masks" and not np.array_equal(np.asarray(source),
                                                            np.asarray(target[...])):
                layout = layer.layout
                implied = (f"its mask implies {layout.describe_mask(source)}" if name == "mask"
                           else "its gather tables differ")
                raise ValueError(f"{type(layer).__name__}: the variables are of another graph "
                                 f"({implied}) than this layer's {layout.describe_graph()}, "
                                 f"whose mask has density {layout.mask.mean():.4f}; build the "
                                 "layer with their graph, or load variables made for this one")
            pairs.append((target, source))
    for target, source in pairs:  # every check passed: nothing is half-loaded
        target[...] = jnp.asarray(source, target.dtype)
    return layer


def linen_variables(layer: nnx.Module) -> dict:
    """The nnx layer's weights as the linen twin's variables dict."""
    variables: dict = {}
    for collection, names in _WEIGHTS.items():
        for name in names:
            value = getattr(layer, name, None)
            if value is not None:
                variables.setdefault(collection, {})[name] = value[...]
    return variables
