"""flax.linen graph layers: MaskedDense, MaskedConv, and the dense DepthwiseConv of separable nets.

A graph layer takes a RelationalGraph (or a spec string) and keeps only the weights
between channel groups the graph connects. Three implementations give the same numbers:
impl="mask" stores the dense kernel ("params"/"kernel", zero off the graph) and a 0/1
mask ("masks"/"mask"); impl="blocks" stores only the connected blocks ("params"/"blocks")
and computes only them; impl="gather" (MaskedDense only) stores a per-node kernel
("params"/"kernel", (n, degree_slots, in_group, out_group)) and index tables ("masks"/
"reads", "out_node", "out_slot"). A "masks" collection passed at apply time replaces the
graph's mask or tables (the trainer stacks many graphs that way); without one the
graph's own are used.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import flax.linen as nn
import jax.numpy as jnp

from relgraph_jax import ops, relational


def _layer_name(module: nn.Module) -> str:
    name = type(module).__name__
    return f"{name} {module.name!r}" if module.name else name


def _check_graph_options(module: nn.Module, impls=ops.IMPLS) -> None:
    layer = _layer_name(module)
    ops.check_channels(module.features, "features", layer)
    ops.check_impl(module.impl, layer, impls)
    relational.check_partition(module.partition, layer)
    relational.as_graph(module.graph, layer)


def _masks(module: nn.Module, arrays: dict) -> dict:
    """The graph's arrays, from the "masks" collection when one is given or being made."""
    if all(module.has_variable("masks", name) for name in arrays) \
            or module.is_mutable_collection("masks"):
        return {name: module.variable("masks", name, lambda a=a: jnp.asarray(a)).value
                for name, a in arrays.items()}
    return {name: jnp.asarray(a) for name, a in arrays.items()}


def _graph_weights(module: nn.Module, in_features: int, window: tuple):
    """Create (at init) or read the layer's weights and what the op takes beside them."""
    layout = ops.graph_layout(module.impl, module.graph, in_features, module.features, module.partition,
                              degree_slots=getattr(module, "degree_slots", None), layer=_layer_name(module))
    weights = module.param(layout.weight, lambda key: layout.init(key, window, module.kernel_init,
                                                                  module.param_dtype))
    return weights, layout.static(_masks(module, layout.arrays()))


def _bias(module: nn.Module):
    return module.param("bias", module.bias_init, (module.features,), module.param_dtype) if module.use_bias else None


class MaskedDense(nn.Module):
    """A dense layer whose (in, out) weights follow a relational graph.

    Attributes: features (output channels), graph (RelationalGraph or spec string), impl
    ("mask" | "blocks" | "gather"), partition ("permuted", the default, | "contiguous" channel groups),
    degree_slots (gather only: kernel slots per node, default the graph's largest
    in-degree; larger lets graphs of a sweep share one shape), use_bias, dtype
    (computation), param_dtype, kernel_init (None: the paper's graph init, normal with
    std sqrt(2 / (out * density))), bias_init.
    """
    features: int
    graph: Any
    impl: str = "mask"
    partition: str = relational.DEFAULT_PARTITION
    degree_slots: Optional[int] = None
    use_bias: bool = False
    dtype: Optional[Any] = None
    param_dtype: Any = jnp.float32
    kernel_init: Optional[Callable] = None
    bias_init: Callable = nn.initializers.zeros

    def __post_init__(self):
        super().__post_init__()
        _check_graph_options(self)

    @nn.compact
    def __call__(self, x):
        ops.check_input(x, _layer_name(self))
        weights, static = _graph_weights(self, x.shape[-1], ())
        bias = _bias(self)
        x, weights, bias = nn.dtypes.promote_dtype(x, weights, bias, dtype=self.dtype)
        y = ops.graph_matmul(self.impl, x, weights, static)
        return y if bias is None else y + bias


class MaskedConv(nn.Module):
    """A 2-D convolution (NHWC) whose (in, out) channel weights follow a relational graph.

    The graph mask is shared by every position of the kernel window. Attributes as
    MaskedDense plus kernel_size, strides (int or pair) and padding ("SAME", "VALID", an
    int or ((lo, hi), (lo, hi))). Default init: normal, std sqrt(2 / (kh * kw * out * density)).
    """
    features: int
    kernel_size: Any
    graph: Any
    strides: Any = 1
    padding: Any = "SAME"
    impl: str = "mask"
    partition: str = relational.DEFAULT_PARTITION
    use_bias: bool = False
    dtype: Optional[Any] = None
    param_dtype: Any = jnp.float32
    kernel_init: Optional[Callable] = None
    bias_init: Callable = nn.initializers.zeros

    def __post_init__(self):
        super().__post_init__()
        _check_graph_options(self, ops.CONV_IMPLS)
        layer = _layer_name(self)
        ops.pair(self.kernel_size, "kernel_size", layer)
        ops.pair(self.strides, "strides", layer)
        ops.conv_padding(self.padding, layer)

    @nn.compact
    def __call__(self, x):
        layer = _layer_name(self)
        if x.ndim < 4:
            raise ValueError(f"{layer}: input must be (batch..., H, W, C), got shape {x.shape}")
        window = ops.pair(self.kernel_size, "kernel_size", layer)
        strides = ops.pair(self.strides, "strides", layer)
        padding = ops.conv_padding(self.padding, layer)
        weights, static = _graph_weights(self, x.shape[-1], window)
        bias = _bias(self)
        x, weights, bias = nn.dtypes.promote_dtype(x, weights, bias, dtype=self.dtype)
        y = ops.graph_conv(self.impl, x, weights, static, strides, padding)
        return y if bias is None else y + bias


class DepthwiseConv(nn.Module):
    """A dense depthwise 2-D convolution (one filter per channel), as separable nets need.

    Depthwise convs carry no graph. Kernel layout (kh, kw, 1, C), the same as
    nn.Conv(C, feature_group_count=C); default init is He fan-out (std sqrt(2 / (kh*kw*C))),
    the graph init at density 1.
    """
    kernel_size: Any
    strides: Any = 1
    padding: Any = "SAME"
    use_bias: bool = False
    dtype: Optional[Any] = None
    param_dtype: Any = jnp.float32
    kernel_init: Callable = ops.graph_init(1.0)
    bias_init: Callable = nn.initializers.zeros

    def __post_init__(self):
        super().__post_init__()
        layer = _layer_name(self)
        ops.pair(self.kernel_size, "kernel_size", layer)
        ops.pair(self.strides, "strides", layer)
        ops.conv_padding(self.padding, layer)

    @nn.compact
    def __call__(self, x):
        layer = _layer_name(self)
        if x.ndim < 4:
            raise ValueError(f"{layer}: input must be (batch..., H, W, C), got shape {x.shape}")
        channels = x.shape[-1]
        window = ops.pair(self.kernel_size, "kernel_size", layer)
        kernel = self.param("kernel", self.kernel_init, window + (1, channels), self.param_dtype)
        bias = self.param("bias", self.bias_init, (channels,), self.param_dtype) if self.use_bias else None
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = ops.conv2d(x, kernel, ops.pair(self.strides, "strides", layer),
                       ops.conv_padding(self.padding, layer), feature_group_count=channels)
        return y if bias is None else y + bias
