"""Config validation that runs before any data loading or compilation: the one place.

Every error names the field, the bad value and what is allowed. `validate_config` checks
the config's structure and ranges (and the mesh against the devices present);
`check_graphs` the resolved graphs against the model.
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import jax

from relgraph_jax import models
from relgraph_jax.data import spec as data_spec
from relgraph_jax.search import live as search_live

TOP_LEVEL = {"model", "graphs", "seeds", "budget_match", "input_shape", "data", "train",
             "mesh", "grid", "search"}
TRAIN_FIELDS = {"batch_size", "epochs", "lr", "momentum", "nesterov", "weight_decay",
                "eval_every", "eval_batch_size", "steps_per_call", "log_every_steps",
                "checkpoint_every_steps", "variant_batch", "width_buckets", "compute_dtype",
                "bn_group_size", "precise_bn_samples"}
COMPUTE_DTYPES = ("float32", "bfloat16")
MESH_FIELDS = {"data", "devices"}
GRID_FIELDS = ("lr", "weight_decay")


def _check_keys(section: str, present, allowed) -> None:
    unknown = sorted(set(present) - set(allowed))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(section + k for k in unknown)}; "
                         f"allowed in {section.rstrip('.') or 'config'}: {sorted(allowed)}")
    missing = sorted(set(allowed) - set(present))
    if missing:
        raise ValueError(f"config is missing {', '.join(section + k for k in missing)}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(name: str, value) -> None:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name}={value!r}: must be a positive integer")


def _check_batchnorm(train_cfg, data_devices: int) -> None:
    """Ghost BatchNorm groups must tile each device's share of the batch (none straddles
    devices); precise BN takes whole training batches."""
    g, n = train_cfg.bn_group_size, train_cfg.precise_bn_samples
    if not _is_int(g) or g < 0 or (g and train_cfg.batch_size % (data_devices * g)):
        raise ValueError(f"train.bn_group_size={g!r}: must be 0 (BatchNorm statistics over the "
                         "whole batch) or a positive integer dividing the per-device batch "
                         f"train.batch_size / mesh.data = {train_cfg.batch_size} / {data_devices}")
    if not _is_int(n) or n < 0 or n % train_cfg.batch_size:
        raise ValueError(f"train.precise_bn_samples={n!r}: must be 0 (off) or a positive "
                         f"multiple of train.batch_size={train_cfg.batch_size}")


def _bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r}: must be True or False")


# What a learning rate and a weight decay may be: (the rule in words, the test).
LR_RANGE = ("> 0", lambda v: v > 0)
WEIGHT_DECAY_RANGE = (">= 0", lambda v: v >= 0)


def _number(name: str, value, rule: str | tuple, test=None) -> None:
    """A finite real number passing `test` (`rule` says it in words), else one line naming
    the field. NaN and infinity pass no rule: they would only surface as failed variants."""
    if isinstance(rule, tuple):
        rule, test = rule
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={value!r}: must be a number {rule}, got "
                         f"{type(value).__name__}")
    if not (math.isfinite(value) and test(value)):
        raise ValueError(f"{name}={value!r}: must be {rule} and finite")


def _check_grid(grid) -> None:
    """Each grid field is a list of distinct numbers in its train field's range (a value
    listed twice would train the same variants twice, which the analysis would count as
    more seeds)."""
    unknown = sorted(set((grid or {}).keys()) - set(GRID_FIELDS))
    if unknown:
        raise ValueError(f"config.grid has unknown field(s) {unknown}; allowed: {list(GRID_FIELDS)}")
    ranges = {"lr": LR_RANGE, "weight_decay": WEIGHT_DECAY_RANGE}
    for name, values in (grid or {}).items():
        if values is None:
            continue
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"grid.{name}={values!r}: must be a list of numbers, e.g. "
                             f"(0.1, 0.05), or () for train.{name} alone")
        for i, v in enumerate(values):
            _number(f"grid.{name}[{i}]", v, ranges[name])
        repeated = sorted({v for v in values if list(values).count(v) > 1})
        if repeated:
            raise ValueError(f"grid.{name}={tuple(values)!r} lists {repeated[0]!r} twice: each "
                             "setting would train the same variants twice")


def validate_config(config) -> None:
    """Checks the structure and ranges of a training config (not graphs or data files)."""
    _check_keys("", config.keys(), TOP_LEVEL)
    train_cfg = config.train
    _check_keys("train.", train_cfg.keys(), TRAIN_FIELDS)
    _check_keys("mesh.", config.mesh.keys(), MESH_FIELDS)
    for name in ("batch_size", "epochs", "eval_every", "eval_batch_size", "steps_per_call",
                 "log_every_steps", "width_buckets"):
        _positive_int(f"train.{name}", train_cfg[name])
    if not _is_int(train_cfg.variant_batch) or train_cfg.variant_batch < 0:
        raise ValueError(f"train.variant_batch={train_cfg.variant_batch!r}: must be a positive integer, "
                         "or 0 for all of a device's variants at once")
    if train_cfg.compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"train.compute_dtype={train_cfg.compute_dtype!r}: allowed {list(COMPUTE_DTYPES)}")
    if not _is_int(train_cfg.checkpoint_every_steps) or train_cfg.checkpoint_every_steps < 0:
        raise ValueError(f"train.checkpoint_every_steps={train_cfg.checkpoint_every_steps!r}: must be "
                         ">= 0 (0 = checkpoint only after evaluations)")
    _positive_int("seeds", config.seeds)
    check_mesh(config.mesh.data, config.mesh.devices)
    _check_batchnorm(train_cfg, config.mesh.data)
    _bool("train.nesterov", train_cfg.nesterov)
    _bool("budget_match", config.budget_match)
    _number("train.lr", train_cfg.lr, LR_RANGE)
    _number("train.momentum", train_cfg.momentum, "in [0, 1)", lambda v: 0 <= v < 1)
    _number("train.weight_decay", train_cfg.weight_decay, WEIGHT_DECAY_RANGE)
    _check_grid(config.grid)
    data_spec.parse(config.data)
    _check_search(config)


def _check_search(config) -> None:
    """The live search block (search/live.py); checked whether or not the search is on."""
    search = config.search
    _check_keys("search.", search.keys(), search_live.FIELDS)
    if search.policy not in search_live.POLICIES:
        raise ValueError(f"search.policy={search.policy!r}: allowed {list(search_live.POLICIES)}")
    if search.metric not in search_live.METRICS:
        raise ValueError(f"search.metric={search.metric!r}: allowed {list(search_live.METRICS)}")
    if not isinstance(search.keep_complete, bool):
        raise ValueError(f"search.keep_complete={search.keep_complete!r}: must be True or False")
    try:
        policy = search_live.policy_of(search)
    except ValueError as e:
        raise ValueError(f"search.{e}") from None
    if search.policy == "none":
        return
    if not policy.rungs(config.train.epochs):
        raise ValueError(f"search.first_rung={search.first_rung}: the search decides nothing "
                         f"before the last epoch (train.epochs={config.train.epochs}); choose "
                         "first_rung < train.epochs")
    if search.metric == "val_error" and not config.data.get("validation_size", 0):
        raise ValueError("search.metric='val_error' ranks the graphs on a validation split, "
                         "but data.validation_size=0: set data.validation_size (e.g. a tenth "
                         "of the training examples), or search.metric='test_error' (the "
                         "paper's protocol; selects on the test set)")


def check_data(config, summary) -> None:
    """The data fit the config (`data.summary`: what is known without loading): images of
    config.input_shape, a whole batch of training examples, and every label one of the
    model's classes (the labels read, else the classes the data set declares). A label
    outside them would make every variant's loss NaN, which reads as divergence."""
    where = summary.where
    if summary.image_shape is not None and tuple(summary.image_shape) != tuple(config.input_shape):
        raise ValueError(f"{where}: images have shape {tuple(summary.image_shape)} but "
                         f"config.input_shape is {tuple(config.input_shape)}; set them equal")
    held = config.data.get("validation_size", 0)  # summary.num_train is net of it
    if held and summary.num_train is not None and summary.num_train < 1:
        raise ValueError(f"data.validation_size={held} must be smaller than the "
                         f"{summary.num_train + held} training examples of {where}")
    if summary.num_train is not None and config.train.batch_size > summary.num_train:
        raise ValueError(f"config.train.batch_size={config.train.batch_size} exceeds the "
                         f"{summary.num_train} training examples of {where}"
                         + (f" left after data.validation_size={held}" if held else ""))
    classes = config.model.num_classes
    allowed = f"0..{classes - 1} (model.num_classes={classes})"
    for array, (low, high) in summary.labels.items():
        bad = low if low < 0 else high if high >= classes else None
        if bad is not None:
            raise ValueError(f"{where}: {array} holds label {bad}, outside {allowed}")
    if not summary.labels and summary.declared_classes is not None \
            and summary.declared_classes > classes:
        n = summary.declared_classes
        raise ValueError(f"{where} declares {n} classes but model.num_classes={classes}: "
                         f"labels up to {n - 1} would fall outside the model's outputs; set "
                         f"model.num_classes={n}")


def check_memory(config, variant_list, summary) -> None:
    """The sweep's estimated memory (train/memory.py) fits the machine: the host's on the
    CPU (its devices share it), each accelerator's own limit elsewhere. A sweep that does
    not fit is refused with both figures before it is built and compiled."""
    from relgraph_jax import machine
    from relgraph_jax.train import memory  # imports variants, which imports this module
    devices = jax.devices()[:config.mesh.devices or jax.device_count()]
    est = memory.estimate(config, variant_list, summary.num_train or 0,
                          summary.num_test or config.train.eval_batch_size, len(devices),
                          resident=not summary.streamed)
    what = f"this sweep ({len(variant_list)} variants; {est.breakdown()})"
    hint = ("use fewer variants (graphs, seeds or grid values), train.variant_batch=1, a "
            "lower train.eval_batch_size or train.batch_size, or more devices")
    limit = machine.device_bytes_limit(devices[0])
    if limit is None:
        local = sum(d.process_index == jax.process_index() for d in devices)
        machine.check_fits(est.on_host(local), machine.available_host_bytes(), what, hint)
    else:
        machine.check_fits(est.per_device, limit, what + " on each device", hint)
        machine.check_fits(est.host, machine.available_host_bytes(), "placing its largest "
                           "bucket's state from the host", hint)


def check_mesh(data_parallel, num_devices) -> None:
    """mesh.devices (0 = all) must exist here and mesh.data must divide them."""
    available = jax.device_count()
    if not _is_int(num_devices) or not 0 <= num_devices <= available:
        raise ValueError(f"config.mesh.devices={num_devices!r}: allowed 0 (all) or 1..{available}")
    used = num_devices or available
    if not _is_int(data_parallel) or data_parallel < 1 or used % data_parallel:
        raise ValueError(f"config.mesh.data={data_parallel!r} must be a positive divisor of the "
                         f"{used} devices used")


def _check_distinct(graphs) -> None:
    """No graph twice, under one spec or two (`paper:n64_52/27` is `paper:n64_3942/2267`):
    its variants would repeat the same seeds, and count as extra replicates in the analysis."""
    first = {}
    for i, g in enumerate(graphs):
        if g in first:
            j = first[g]
            same = (f"lists {g.spec!r} twice" if graphs[j].spec == g.spec else
                    f"lists the same graph as {graphs[j].spec!r} and {g.spec!r}")
            raise ValueError(f"config.graphs {same} (graphs {j} and {i} of {len(graphs)}): its "
                             "variants would train twice with the same seeds; list each graph "
                             "once (config.seeds sets the replicates)")
        first[g] = i


def check_graphs(config, graphs) -> None:
    """Every graph has the model's node count; the blocks layout (one graph's block list
    compiled into the program) takes one graph, mask and gather carry each as data."""
    for g in graphs:
        models.check_nodes(config.model, g)
    _check_distinct(graphs)
    specs = {g.spec for g in graphs}
    if (config.search.policy != "none" and config.search.keep_complete
            and not any(s.startswith(search_live.COMPLETE_PREFIX) for s in specs)):
        raise ValueError(f"search.keep_complete=True keeps the complete graph as a baseline, but "
                         f"the sweep has none; add complete:n={config.model.nodes} to the graphs "
                         "or set search.keep_complete=False")
    if config.model.get("impl") == "blocks" and len(specs) > 1:
        raise ValueError(f"model.impl='blocks' compiles one graph's blocks into the program, but "
                         f"this sweep has {len(specs)} graphs; use model.impl='mask' or (MLP) "
                         "'gather', which carry each variant's graph as data")
