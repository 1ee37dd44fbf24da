"""Every config field outside `model` (whose fields a model family owns): one row each,
declared next to the code that reads it, in one table.

A row holds the field's default, its check and whether it is part of a workdir's
identity. From the table come the config every experiment config starts from
(`defaults`), `complete` (what a config leaves out takes its default; an unknown or
missing key is refused naming the allowed ones) and `identity`, which
`workdir.config_identity` compares. A field at its default is left out of the identity,
so a workdir made before a field existed resumes until that field is set to something
else: adding a field is one row.

Sections: top-level fields ("seeds") and "train.", "data.", "search.", "mesh.", "grid.".
Checks that relate several fields (BatchNorm groups against the batch, the search's rungs
against the epochs) stay in `train.validate`; a data block's rules per source in
`data.spec.parse`, whose rows therefore carry no check of their own.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Any, Callable

import ml_collections
from ml_collections import config_dict

from relgraph_jax.registry import Registry

SECTIONS = ("train", "data", "search", "mesh", "grid")
GRID_KEYS = ("lr", "weight_decay")  # what a variant carries (train.variants.Variant)


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED = _Required()  # the default of a field every config must give (a recipe's lr)


@dataclasses.dataclass(frozen=True)
class ConfigField:
    """One config field.

    name: its dotted path ("train.lr"). summary: one line for the docs table. check:
    (name, value) -> None, raising ValueError that names the field, the value and what is
    allowed (None: checked elsewhere, as the data block). identity: False for run control
    (how often to log or save, the device layout), which may change between a run and its
    resume. inert: flat identity dict -> True where the field changes nothing (the search
    fields while search.policy is "none"), so it is left out of the identity there. type:
    for a default of None, what the command line may set it to.
    """
    name: str
    default: Any
    summary: str
    check: Callable[[str, Any], None] | None = None
    identity: bool = True
    inert: Callable[[dict], bool] | None = None
    type: type | None = None  # the value's type where the default is None (command line)

    @property
    def section(self) -> str:
        return self.name.rpartition(".")[0]

    @property
    def key(self) -> str:
        return self.name.rpartition(".")[2]


CONFIG_FIELDS: Registry[ConfigField] = Registry("config field", dotted=True)


def register_config_fields(*fields: ConfigField) -> None:
    """Adds rows to the table (each name new, in one of SECTIONS or top-level). A new
    field at its default changes nothing for existing workdirs."""
    for field in fields:
        if not isinstance(field, ConfigField):
            raise TypeError(f"register_config_fields takes ConfigFields, got "
                            f"{type(field).__name__}")
        if field.section not in ("",) + SECTIONS:
            raise ValueError(f"config field {field.name!r}: its section must be one of "
                             f"{list(SECTIONS)} or none (top-level); model fields belong to a "
                             "family")
        if not field.section and field.key in ("model",) + SECTIONS:
            raise ValueError(f"config field {field.name!r} would replace the {field.key} block; "
                             "choose another name")
        if field.check is not None and field.default not in (REQUIRED, None) \
                and field.check(field.name, field.default) is not None:
            raise TypeError(f"config field {field.name!r}: its check returned a value instead of "
                            "raising or returning None (number(rule, test) and "
                            "int_at_least_zero(meaning) make checks; call them)")
        if field.section == "grid" and field.key not in GRID_KEYS:
            raise ValueError(f"config field {field.name!r}: a grid sweeps only {list(GRID_KEYS)}, "
                             "the hyper-parameters each variant carries")
        CONFIG_FIELDS.declare(field, depth=2)


def fields_of(section: str) -> dict[str, ConfigField]:
    """The rows of one section ("" for the top level) by key."""
    return {f.key: f for _, f in CONFIG_FIELDS.items() if f.section == section}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


def defaults() -> ml_collections.ConfigDict:
    """A config holding every field with a default (REQUIRED ones left out), sections
    included, for experiment configs to start from and the command line to override."""
    config = ml_collections.ConfigDict({s: {} for s in SECTIONS})
    for _, f in CONFIG_FIELDS.items():
        if f.default is not REQUIRED:
            value = f.default if f.default is not None or f.type is None else \
                config_dict.placeholder(f.type)
            (config[f.section] if f.section else config)[f.key] = value
    return config


def _check_keys(section: str, present, allowed) -> None:
    prefix = section + "." if section else ""
    unknown = sorted(set(present) - set(allowed))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
                         f"allowed in {section or 'config'}: {sorted(allowed)}")


def complete(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` with every field it leaves out at its default, each row's check
    passed. Raises ValueError in one line for an unknown key, a missing required one, or a
    bad value. `model` is left to its family."""
    config = ml_collections.ConfigDict(config.to_dict())
    for section in ("",) + SECTIONS:
        rows = fields_of(section)
        block = config if not section else config.get(section)
        if block is None:
            config[section] = block = ml_collections.ConfigDict()
        if not isinstance(block, ml_collections.ConfigDict):
            raise ValueError(f"config.{section}={block!r}: must be a block of fields "
                             f"({', '.join(sorted(rows))})")
        allowed = set(rows) | ({"model", *SECTIONS} if not section else set())
        _check_keys(section, block.keys(), allowed)
        missing = sorted(f.name for key, f in rows.items()
                         if key not in block and f.default is REQUIRED)
        if missing:
            raise ValueError(f"config is missing {', '.join(missing)}")
        for key, f in rows.items():
            if key not in block:
                block[key] = f.default
            elif f.check is not None:
                f.check(f.name, block[key])
    return config


def identity(flat: dict) -> dict:
    """Of a flattened config (JSON values), what a workdir's results depend on: every
    field except run control, those at their default and those inert in it. Keys outside
    the table (model fields, fields of modules not imported here) are kept."""
    rows = dict(CONFIG_FIELDS.items())
    kept = {}
    for key, value in flat.items():
        f = rows.get(key)
        at_default = f is not None and f.default is not REQUIRED and value == _jsonable(f.default)
        if f is None or (f.identity and not at_default and not (f.inert and f.inert(flat))):
            kept[key] = value
    return kept


def markdown_table() -> str:
    """The table of docs/config.md: every field with its default, whether a resume may
    change it (run control) and what it means; sections in SECTIONS order, then by name."""
    rows = ["| field | default | resume may change it | meaning |", "|---|---|---|---|"]
    order = ("",) + SECTIONS
    for name, f in sorted(CONFIG_FIELDS.items(),
                          key=lambda item: (order.index(item[1].section), item[0])):
        default = "*required*" if f.default is REQUIRED else f"`{f.default!r}`"
        rows.append(f"| `{name}` | {default} | {'' if f.identity else 'yes'} | {f.summary} |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------ checks
def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(name: str, value) -> None:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name}={value!r}: must be a positive integer")


def int_at_least_zero(meaning: str) -> Callable[[str, Any], None]:
    """An integer >= 0; `meaning` says what 0 does, for the message."""
    def check(name: str, value) -> None:
        if not _is_int(value) or value < 0:
            raise ValueError(f"{name}={value!r}: must be >= 0 ({meaning})")
    return check


def boolean(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r}: must be True or False")


def number(rule: str, test: Callable[[float], bool]) -> Callable[[str, Any], None]:
    """A finite real number passing `test` (`rule` says it in words). NaN and infinity pass
    no rule: they would only surface as failed variants."""
    def check(name: str, value) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{name}={value!r}: must be a number {rule}, got "
                             f"{type(value).__name__}")
        if not (math.isfinite(value) and test(value)):
            raise ValueError(f"{name}={value!r}: must be {rule} and finite")
    return check


def one_of(allowed: tuple | Registry) -> Callable[[str, Any], None]:
    """A value among `allowed` (a tuple, or a registry's names read when checked, so a
    registration made after this row still counts)."""
    def check(name: str, value) -> None:
        names = allowed.names() if isinstance(allowed, Registry) else allowed
        if value not in names:
            hint = (" (one of your own: name its module in config.imports, docs/extending.md)"
                    if isinstance(allowed, Registry) else "")
            raise ValueError(f"{name}={value!r}: allowed {list(names)}{hint}")
    return check
