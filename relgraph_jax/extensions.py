"""`config.imports`: the user's own modules that register graph kinds, model families,
schedules, optimisers, losses or config fields (docs/extending.md).

The modules are imported before the rest of the config is read, by every tool in its own
process: `experiments.main` and `describe` from the config, `analyze` and
`replay_search` from the config.json a workdir records. A module that cannot be imported,
or whose registration clashes with a built-in or another one, is refused in one line.
"""
from __future__ import annotations

import importlib
import json
import os
from typing import Sequence

from relgraph_jax.config_fields import ConfigField, register_config_fields
from relgraph_jax.train.workdir import CONFIG_FILE


def _check_imports(name: str, value) -> None:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name}={value!r}: must be a tuple of module names, e.g. "
                         "('examples.extending.mobius',)")
    for module in value:
        if not (isinstance(module, str) and module
                and all(w.isidentifier() for w in module.split("."))):
            raise ValueError(f"{name}: {module!r} is not a module name (dotted words, as in "
                             "examples.extending.mobius, not a file path); several go in a "
                             "tuple: --config.imports=\"('a', 'b')\"")


# Not part of a workdir's identity: what a module registers matters only through the
# names a config uses (graphs, model.name, train.schedule, ...), which are.
register_config_fields(ConfigField(
    "imports", (), "modules imported first, registering the config's own graph kinds, "
    "families, schedules... (docs/extending.md)", _check_imports, identity=False))


def load(modules: Sequence[str]) -> None:
    """Imports `modules` in order (once per process: Python keeps them), each registering
    what it declares. ValueError in one line naming the module for a bad name, a module
    that cannot be imported (its error), or a registration refused (its clash)."""
    _check_imports("config.imports", modules)
    for module in modules:
        try:
            importlib.import_module(module)
        except ValueError as error:  # a clash, or the module's own check
            raise ValueError(f"config.imports: importing {module!r} failed: {error}") from error
        except Exception as error:  # noqa: BLE001  (any failure of a user's module: one line)
            first = str(error).splitlines()[0] if str(error) else ""
            why = f"{type(error).__name__}{': ' + first if first else ''}"
            missing = isinstance(error, ModuleNotFoundError) and error.name is not None \
                and module.startswith(error.name)
            if missing:
                raise ValueError(f"config.imports: cannot import {module!r} ({why}); it must be "
                                 "importable from the working directory or the Python path"
                                 ) from error
            raise ValueError(f"config.imports: importing {module!r} failed ({why})") from error


def load_recorded(workdir: str) -> str | None:
    """Imports the modules WORKDIR/config.json names in `imports` (none without one), so a
    tool reading a workdir knows the graph kinds and families its run used. The records
    hold what an analysis needs, so a module that fails is not fatal: returns why, for
    the tool to print (without them it cannot count the sweep config.json declares)."""
    path = os.path.join(workdir, CONFIG_FILE)
    try:
        with open(path) as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        return None  # no trainer's config here (an imported run): nothing was registered
    try:
        load(recorded.get("imports") or () if isinstance(recorded, dict) else ())
    except ValueError as error:
        return f"{workdir}: {error}; going on without it"
    return None
