"""The `model` block of a config: the paper's defaults per family, checked and frozen.

Every field of a family has a default here, so a config may give only what it changes;
an unknown field or a bad value fails at once, naming the field and what is allowed,
before any model is built. The result is a read-only, hashable `Settings`, which the
budget caches key on.
"""
from __future__ import annotations

import numbers
from typing import Any, Iterator, Mapping

import ml_collections

from relgraph_jax.models.efficientnet import ACTIVATIONS, EXPANSIONS
from relgraph_jax.models.resnet import BLOCKS as RESNET_BLOCKS
from relgraph_jax.ops import CONV_IMPLS, IMPLS
from relgraph_jax.relational import DEFAULT_PARTITION, PARTITIONS

SHORTCUT_RULES = ("per_width", "padded_identity")
EFFICIENTNET_EXPANSIONS = ("graph2nn",) + EXPANSIONS

_COMMON = dict(impl="mask", partition=DEFAULT_PARTITION)
_RESNET = dict(nodes=64, width=64, num_classes=1000, depths=(3, 4, 6, 3), stage_ratios=(1, 2, 4, 8),
               stem_width=64, zero_init_last_bn=True, shortcut_rule="per_width")

DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": dict(nodes=64, width=512, num_classes=10, stem_width=512, depth=3),
    "cnn8": dict(nodes=64, width=64, num_classes=1000, stem_width=64, stage_ratios=(1, 2, 4),
                 convs_per_stage=2),
    "resnet34": dict(_RESNET, block="basic"),
    "resnet34sep": dict(_RESNET, block="separable"),
    "resnet50": dict(_RESNET, block="bottleneck"),
    "efficientnet_b0": dict(nodes=16, width=320, num_classes=1000, stem_width=32,
                            base_widths=(16, 24, 40, 80, 112, 192, 320),
                            depths=(1, 2, 2, 3, 3, 4, 1), kernels=(3, 3, 5, 3, 5, 5, 3),
                            strides=(1, 2, 2, 2, 1, 2, 1), expand_ratios=(1, 6, 6, 6, 6, 6, 6),
                            se_ratio=0.25, head_width=1280, activation="swish",
                            expansion="graph2nn"),
}
FAMILIES = tuple(DEFAULTS)


def default_config(name: str) -> ml_collections.ConfigDict:
    """The full model block of family `name` with the paper's values (every field present)."""
    _check_name(name)
    return ml_collections.ConfigDict({"name": name, **_COMMON, **DEFAULTS[name]})


class Settings(Mapping):
    """A checked model block: read-only, fields as attributes, hashable (sequences are tuples)."""
    __slots__ = ("_fields", "_hash")

    def __init__(self, fields: Mapping[str, Any]):
        frozen = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        object.__setattr__(self, "_fields", frozen)
        object.__setattr__(self, "_hash", hash(tuple(sorted(frozen.items()))))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"model settings have no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("model settings are read-only")

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Settings) and self._fields == other._fields

    def __repr__(self) -> str:
        return f"Settings({self._fields})"


def settings(model_cfg: Any) -> Settings:
    """`model_cfg` (ConfigDict or mapping) checked and completed with the family's defaults."""
    if isinstance(model_cfg, Settings):
        return model_cfg
    if isinstance(model_cfg, ml_collections.ConfigDict):
        model_cfg = model_cfg.to_dict()
    if not isinstance(model_cfg, Mapping):
        raise TypeError(f"model config must be a ConfigDict or a mapping, got {type(model_cfg).__name__}")
    model_cfg = dict(model_cfg)
    name = model_cfg.get("name")
    _check_name(name)
    allowed = {"name", *_COMMON, *DEFAULTS[name]}
    unknown = sorted(set(model_cfg) - allowed)
    if unknown:
        raise ValueError(f"{name}: unknown model field(s) {unknown}; allowed: {sorted(allowed)}")
    s = {"name": name, **_COMMON, **DEFAULTS[name], **model_cfg}
    _check_common(s)
    _CHECKS[name](s)
    return Settings(s)


def _check_name(name: Any) -> None:
    if name not in DEFAULTS:
        raise ValueError(f"unknown model family {name!r}; allowed: {list(FAMILIES)}")


def _fail(s: Mapping, field: str, value: Any, allowed: str) -> None:
    raise ValueError(f"{s['name']}: model.{field}={value!r} is not allowed; expected {allowed}")


def _positive_int(s: Mapping, field: str) -> None:
    value = s[field]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        _fail(s, field, value, "a positive integer")


def _choice(s: Mapping, field: str, allowed: tuple) -> None:
    if s[field] not in allowed:
        _fail(s, field, s[field], f"one of {list(allowed)}")


def _flag(s: Mapping, field: str) -> None:
    if not isinstance(s[field], bool):
        _fail(s, field, s[field], "True or False")


def _sequence(s: Mapping, field: str, length: int | None = None, integer: bool = True) -> None:
    """A non-empty sequence of positive numbers (integers if `integer`), of `length` if given."""
    value = s[field]
    kind = "integers" if integer else "numbers"
    allowed = f"a non-empty sequence of positive {kind}" + (f" of length {length}" if length else "")
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or not value:
        _fail(s, field, value, allowed)
    number = numbers.Integral if integer else numbers.Real
    if any(isinstance(v, bool) or not isinstance(v, number) or v <= 0 for v in value):
        _fail(s, field, value, allowed)
    if length is not None and len(value) != length:
        _fail(s, field, value, allowed)


def _check_common(s: Mapping) -> None:
    for field in ("nodes", "width", "num_classes"):
        _positive_int(s, field)
    _choice(s, "impl", IMPLS if s["name"] == "mlp" else CONV_IMPLS)
    _choice(s, "partition", PARTITIONS)


def _check_mlp(s: Mapping) -> None:
    _positive_int(s, "stem_width")
    _positive_int(s, "depth")


def _check_cnn(s: Mapping) -> None:
    _positive_int(s, "stem_width")
    _positive_int(s, "convs_per_stage")
    _sequence(s, "stage_ratios", integer=False)


def _check_resnet(s: Mapping) -> None:
    _positive_int(s, "stem_width")
    _choice(s, "block", RESNET_BLOCKS)
    _choice(s, "shortcut_rule", SHORTCUT_RULES)
    _flag(s, "zero_init_last_bn")
    _sequence(s, "depths")
    _sequence(s, "stage_ratios", length=len(s["depths"]), integer=False)


def _check_efficientnet(s: Mapping) -> None:
    for field in ("stem_width", "head_width"):
        _positive_int(s, field)
    _choice(s, "activation", tuple(ACTIVATIONS))
    _choice(s, "expansion", EFFICIENTNET_EXPANSIONS)
    _sequence(s, "base_widths")
    stages = len(s["base_widths"])
    for field in ("depths", "kernels", "strides"):
        _sequence(s, field, length=stages)
    if any(k % 2 == 0 for k in s["kernels"]):
        _fail(s, "kernels", s["kernels"], "odd kernel sizes (padding k // 2 keeps the size)")
    _sequence(s, "expand_ratios", length=stages, integer=False)
    se = s["se_ratio"]
    if isinstance(se, bool) or not isinstance(se, numbers.Real) or not 0 <= se <= 1:
        _fail(s, "se_ratio", se, "a number in [0, 1] (0: no squeeze-and-excitation)")


_CHECKS = {"mlp": _check_mlp, "cnn8": _check_cnn, "resnet34": _check_resnet,
           "resnet34sep": _check_resnet, "resnet50": _check_resnet,
           "efficientnet_b0": _check_efficientnet}
