"""Model families: what `model.name` may be.

Each family is one `Family`, registered once next to its module (the built-ins in mlp.py,
cnn.py, resnet.py, efficientnet.py and vit.py; a user's own module with `register_family`, see
docs/extending.md). Everything else reads the registry: the model block's defaults and
checks (`models.settings`), building, stage widths, which variants share a padded
program (`structure`), the smoke tests and `runlocal` (`tiny`), and the table in
docs/models.md (`markdown_table`, checked against the docs by a test).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Mapping

import flax.linen as nn

from relgraph_jax.models.common import scaled
from relgraph_jax.ops import CONV_IMPLS
from relgraph_jax.registry import Registry

# Fields every family states in its defaults; impl and partition have one default for all.
REQUIRED_FIELDS = ("nodes", "width", "num_classes")


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


@dataclasses.dataclass(frozen=True)
class Family:
    """One model family.

    name: `model.name`. summary: one line for the docs table. defaults: the family's model
    fields with the paper's values (nodes, width and num_classes among them), stated only
    here: a config may give only what it changes. check: the completed block (a mapping)
    -> None, raising a one-line ValueError for a bad field (`models.settings` has helpers).
    make: (Settings, RelationalGraph, per-stage widths) -> the Flax module. stage_ratios:
    Settings -> each stage's width over the base width `model.width`. tiny: model-field
    overrides that give a smoke-sized model which compiles in seconds (the smoke tests and
    `runlocal`). impls: the `model.impl` values its graph layers allow. width_scale: stage
    widths per unit of base width (ResNet-50's base is its inner width, its stages list the
    outputs). structure: module -> what besides channel counts decides its computation;
    variants share one zero-padded program only if it is equal. width_search: None (the
    original code's search, `budget.search_widths`) or the family's own, for widths with
    constraints of their own: (Settings, cost, default widths, target, side, measure) ->
    widths, `cost` mapping a width tuple to the measure being matched. probe_shape:
    Settings -> an image shape (H, W, C) the model takes, for the checks that do not depend
    on the image size (channel counts, the parameter count of `tiny`).
    """
    name: str
    summary: str
    defaults: Mapping[str, Any]
    check: Callable[[Mapping], None]
    make: Callable[..., nn.Module]
    stage_ratios: Callable[[Settings], tuple]
    tiny: Mapping[str, Any]
    impls: tuple[str, ...] = CONV_IMPLS
    width_scale: int = 1
    structure: Callable[[nn.Module], tuple] = lambda module: ()
    width_search: Callable[..., tuple] | None = None
    probe_shape: Callable[[Settings], tuple] = lambda s: (32, 32, 3)

    def scaled_widths(self, s: Settings, width: int) -> tuple[int, ...]:
        """The per-stage widths that base width `width` stands for."""
        return tuple(self.width_scale * scaled(width, r) for r in self.stage_ratios(s))


def common_fields(s: Settings) -> dict:
    """The common fields as every family's module takes them (its head and graph layers)."""
    return dict(num_classes=s.num_classes, impl=s.impl, partition=s.partition)


FAMILIES: Registry[Family] = Registry("model family")


def register_family(family: Family) -> Family:
    """Makes `family` a `model.name` everywhere (configs, build, budget, describe, the
    docs table); its name must be new. Returns it, so a module can keep it."""
    if not isinstance(family, Family):
        raise TypeError(f"register_family takes a Family, got {type(family).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in family.defaults]
    if missing:
        raise ValueError(f"model family {family.name!r}: its defaults must give {missing}")
    return FAMILIES.declare(family, depth=2)


def markdown_table() -> str:
    """The table of docs/models.md, one row per registered family, widths at its defaults."""
    rows = ["| `model.name` | model (graph layers; the rest dense) | nodes | stage widths |",
            "|---|---|---|---|"]
    for name, family in FAMILIES.items():
        s = Settings(family.defaults)
        widths = ", ".join(str(w) for w in family.scaled_widths(s, s.width))
        rows.append(f"| `{name}` | {family.summary} | {s.nodes} | {widths} |")
    return "\n".join(rows)
