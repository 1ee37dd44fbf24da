"""Pieces every model family shares: the layer record the budget counts, BatchNorm, inits.

Each family's Flax module lists its own weight layers (`layer_list`) from the same fields
that build it, so the compute budget is counted from the architecture itself, not traced.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn

# The original (pycls) initialisation of the dense layers: He fan-out normal for convs,
# N(0, 0.01) for linear layers, zero biases.
CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
LINEAR_INIT = nn.initializers.normal(0.01)

LAYER_KINDS = ("graph", "dense", "depthwise", "norm", "embedding", "product")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One weight layer as the compute budget sees it.

    kind: "graph" (weights kept where the graph's channel mask is 1), "dense",
    "depthwise" (one window per channel), "norm" (BatchNorm or LayerNorm scale and bias),
    "embedding" (a learned (cin, cout) array added to activations: parameters, no MACs) or
    "product" (activations times activations, as attention's QK^T and AV: cin x cout
    MACs per output position, no parameters).
    path: the module path in the Flax parameter tree, "/"-joined.
    window: kernel positions kh * kw; out_hw: output (H, W) it is applied at.
    flops_bias: the original code's FLOP count adds this layer's bias (its SE convs do).
    block: a graph layer's block index within its stage (None: in no block); a graph per
    block (`graphs.per_block`) gives each index its own graph.
    """
    path: str
    kind: str
    cin: int
    cout: int
    window: int = 1
    out_hw: tuple = (1, 1)
    bias: bool = False
    flops_bias: bool = False
    block: int | None = None

    def __post_init__(self):
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"layer {self.path}: unknown kind {self.kind!r}; allowed: {LAYER_KINDS}")

    @property
    def positions(self) -> int:
        return self.out_hw[0] * self.out_hw[1]


def norm_layer(path: str, channels: int) -> Layer:
    return Layer(path, "norm", channels, channels)


def batch_norm(train: bool, name: str, zero_init: bool = False) -> nn.BatchNorm:
    """BatchNorm as in the paper: eps 1e-5, PyTorch momentum 0.1 (= flax momentum 0.9).

    zero_init starts the scale at 0, for the last BatchNorm of a residual block.
    """
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        scale_init=nn.initializers.zeros if zero_init else nn.initializers.ones,
                        name=name)


def same_padding(kernel: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """PyTorch's symmetric padding kernel // 2 (flax "SAME" pads unevenly at stride 2)."""
    return ((kernel // 2, kernel // 2),) * 2


STEMS = ("imagenet", "cifar")


def dense_stem(x, kind: str, width: int, kernel: int, train: bool):
    """The dense stem of the CNNs and ResNets: kxk conv, BN, ReLU. "imagenet" convolves at
    stride 2 and max-pools 3x3/2 (224 -> 56); "cifar" keeps the resolution (stride 1, no
    pool), as graph2nn builds its stems for CIFAR-10, whose images are only 32x32."""
    pooled = _pooled(kind, "stem")
    x = nn.Conv(width, (kernel, kernel), strides=2 if pooled else 1,
                padding=same_padding(kernel), use_bias=False, kernel_init=CONV_INIT, name="stem")(x)
    x = nn.relu(batch_norm(train, "stem_bn")(x))
    if pooled:
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=same_padding(3))
    return x


def stem_layers(kind: str, input_shape, width: int, kernel: int, model: str):
    """The stem's weight layers (as `dense_stem` builds them) and the (H, W) it hands on."""
    h, w, c = image_shape(input_shape, model)
    pooled = _pooled(kind, model)
    if pooled:
        h, w = strided(h, 2), strided(w, 2)
    layers = [Layer("stem", "dense", c, width, window=kernel * kernel, out_hw=(h, w)),
              norm_layer("stem_bn", width)]
    if pooled:
        h, w = strided(h, 2), strided(w, 2)  # max-pool
    return layers, h, w


def _pooled(kind: str, model: str) -> bool:
    """Whether the stem downsamples 4x (ImageNet's); ValueError for an unknown stem."""
    if kind not in STEMS:
        raise ValueError(f"{model}: unknown stem {kind!r}; allowed: {list(STEMS)}")
    return kind == "imagenet"


def strided(size: int, stride: int) -> int:
    """Output size of a stride-`stride` layer with padding kernel // 2: ceil(size / stride)."""
    return -(-size // stride)


def scaled(width: int, ratio) -> int:
    """A stage width kept at `ratio` times the base width, rounded to whole channels."""
    return max(1, int(round(width * ratio)))


def image_shape(input_shape, model: str) -> tuple[int, int, int]:
    """(H, W, C) of the input images, with a clear error for anything else."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{model}: input_shape must be (H, W, C) with positive sizes, "
                         f"got {tuple(input_shape)}")
    return shape
