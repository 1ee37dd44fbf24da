"""Config validation that runs before any data loading or compilation: the one place.

Every error names the field, the bad value and what is allowed. `validate_config` checks
the config's structure and ranges (and the mesh against the devices present);
`check_graphs` the resolved graphs against the model.
"""
from __future__ import annotations

import jax
import ml_collections

from relgraph_jax import config_fields, extensions, models
from relgraph_jax.data import spec as data_spec
from relgraph_jax.search import live as search_live
from relgraph_jax.train import dumps, fields, losses, optim  # noqa: F401  (their rows of the table)


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


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _input_shape(config) -> tuple:
    """config.input_shape, which follows data.image_size where the data set is resized to
    it (streams, colour: 3 channels): one statement of the image size, not two that must
    agree. A resident data set's image_size only checks its files, so it needs input_shape."""
    size, given = config.data.get("image_size"), config.input_shape
    if size is None or not data_spec.is_streamed(config.data.source, config.data.name):
        if given is None:
            raise ValueError("config.input_shape is unset: give the images' (H, W, C), e.g. "
                             "(32, 32, 3), or data.image_size for a data set resized to it")
        return tuple(given)
    derived = (size, size, 3)
    if given is not None and tuple(given) != derived:
        raise ValueError(f"config.input_shape={tuple(given)} contradicts data.image_size={size}, "
                         "which sets it: leave config.input_shape unset")
    return derived


def validate_config(config) -> ml_collections.ConfigDict:
    """Checks the structure and ranges of a training config (not graphs or data files) and
    returns it completed: the modules config.imports names imported (they may register
    graph kinds, families or fields), every field it leaves out at its default
    (config_fields), input_shape derived."""
    extensions.load(config.get("imports") or ())
    if "model" not in config:
        raise ValueError("config is missing model (a family's block, e.g. "
                         "models.default_config('mlp'))")
    config = config_fields.complete(config)
    models.settings(config.model)
    config.input_shape = _input_shape(config)
    check_mesh(config.mesh.data, config.mesh.devices)
    _check_batchnorm(config.train, config.mesh.data)
    data_spec.parse(config.data)
    _check_search(config)
    dumps.chosen_epochs(config)  # every dumped epoch one the run evaluates
    return config


def _check_search(config) -> None:
    """The live search's rungs against the epochs and its metric against the data (its
    fields' own checks are in the table, search/live.py); checked whether or not the
    search is on."""
    search = config.search
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
    sparse = sorted(g.spec for g in graphs if not g.is_complete)
    if sparse and not models.has_graph_layers(config.model):
        raise ValueError(f"{config.model.name}: these model settings have no graph layers, so "
                         f"{sparse[0]} would train the complete graph's model; sweep "
                         f"complete:n={config.model.nodes} alone, or give the model graph layers")
    if config.model.get("impl") == "gather" and any(hasattr(g, "block") for g in graphs):
        raise ValueError("model.impl='gather' pads every layer's tables to one graph's "
                         "in-degree, but a graph per block (per_block:, graph_per_block) gives "
                         "each block its own: use model.impl='mask'")
    if config.model.get("impl") == "blocks" and len(specs) > 1:
        raise ValueError(f"model.impl='blocks' compiles one graph's blocks into the program, but "
                         f"this sweep has {len(specs)} graphs; use model.impl='mask' or "
                         "'gather' (where the family allows it), which carry each variant's "
                         "graph as data")
