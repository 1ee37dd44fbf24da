"""The `model` block of a config: the family's defaults, checked and frozen.

Every field of a family has a default (its registry entry's, models/families.py), so a
config may give only what it changes; an unknown field or a bad value fails at once,
naming the field and what is allowed, before any model is built. The result is a
read-only, hashable `Settings`, which the budget caches key on. The helpers below
(`positive_int`, `choice`, ...) are what a family's `check` raises its errors with.
"""
from __future__ import annotations

import numbers
from typing import Any, Mapping

import ml_collections

from relgraph_jax.models.families import FAMILIES, REQUIRED_FIELDS, Settings
from relgraph_jax.relational import DEFAULT_PARTITION, PARTITIONS

_COMMON = dict(impl="mask", partition=DEFAULT_PARTITION)


def default_config(name: str) -> ml_collections.ConfigDict:
    """The full model block of family `name` with the paper's values (every field present)."""
    return ml_collections.ConfigDict({"name": name, **_COMMON, **FAMILIES[name].defaults})


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
    family = FAMILIES[name]
    allowed = {"name", *_COMMON, *family.defaults}
    unknown = sorted(set(model_cfg) - allowed)
    if unknown:
        raise ValueError(f"{name}: unknown model field(s) {unknown}; allowed: {sorted(allowed)}")
    s = {"name": name, **_COMMON, **family.defaults, **model_cfg}
    for field in REQUIRED_FIELDS:
        positive_int(s, field)
    choice(s, "impl", family.impls)
    choice(s, "partition", PARTITIONS)
    family.check(s)
    return Settings(s)


def fail(s: Mapping, field: str, value: Any, allowed: str) -> None:
    """The one-line error for a bad model field: family, field, value, what is allowed."""
    raise ValueError(f"{s['name']}: model.{field}={value!r} is not allowed; expected {allowed}")


def positive_int(s: Mapping, field: str) -> None:
    value = s[field]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        fail(s, field, value, "a positive integer")


def choice(s: Mapping, field: str, allowed: tuple) -> None:
    if s[field] not in allowed:
        fail(s, field, s[field], f"one of {list(allowed)}")


def flag(s: Mapping, field: str) -> None:
    if not isinstance(s[field], bool):
        fail(s, field, s[field], "True or False")


def sequence(s: Mapping, field: str, length: int | None = None, integer: bool = True) -> None:
    """A non-empty sequence of positive numbers (integers if `integer`), of `length` if given."""
    value = s[field]
    kind = "integers" if integer else "numbers"
    allowed = f"a non-empty sequence of positive {kind}" + (f" of length {length}" if length else "")
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or not value:
        fail(s, field, value, allowed)
    number = numbers.Integral if integer else numbers.Real
    if any(isinstance(v, bool) or not isinstance(v, number) or v <= 0 for v in value):
        fail(s, field, value, allowed)
    if length is not None and len(value) != length:
        fail(s, field, value, allowed)

