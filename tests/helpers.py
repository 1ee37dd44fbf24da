"""Helpers for tests that run whole models: cheap compiles, initial variables, masks.

Compiling (XLA's default CPU optimisation and its fusion emitters) and a model's random
init run op by op cost far more than the small forward and backward passes these tests
check, and neither changes what the checks compare: the tests compile with FAST, and
draw variables on the host or run the model's init compiled.
"""
import contextlib
import dataclasses
import functools
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from relgraph_jax import relational
from relgraph_jax.data import imagenet
from relgraph_jax.graphs import catalog

FAST = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


def init_shapes(model, x):
    """The model's variables as shapes (params, batch_stats, masks), computing nothing."""
    return jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)


def init_variables(model, x, seed=0):
    """The model's own initial variables (the paper's init), compiled with FAST: run op by
    op, a ResNet's init takes longer than compiling it."""
    init = jax.jit(functools.partial(model.init, train=False), compiler_options=FAST)
    return jax.device_get(init(jax.random.key(seed), x))


def random_variables(model, x, seed=0):
    """params and batch_stats (empty without BatchNorm) of the model's shapes, drawn on the
    host (compiling a model's random init costs more than its forward pass); BatchNorm
    variances are 1."""
    rng = np.random.default_rng(seed)
    shapes = init_shapes(model, x)

    def draw(path, leaf):
        if path[-1].key == "var":
            return np.ones(leaf.shape, leaf.dtype)
        return (0.3 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)

    return {k: jax.tree_util.tree_map_with_path(draw, shapes.get(k, {}))
            for k in ("params", "batch_stats")}


def graph_masks(model, graph, input_shape, partition=relational.DEFAULT_PARTITION):
    """The "masks" collection of a model, built from its layer list and the graph."""
    masks = {}
    for layer in model.layer_list(input_shape):
        if layer.kind == "graph":
            node = masks
            for key in layer.path.split("/"):
                node = node.setdefault(key, {})
            node["mask"] = relational.layer_mask(graph, layer.cin, layer.cout, partition)
    return masks


def paper_set_arrays(name):
    """C, L and k/n of a paper graph set as arrays, and each row's (k, p, seed)."""
    rows = catalog.paper_set(name)
    return (np.array([r.C for r in rows]), np.array([r.L for r in rows]),
            np.array([r.k / r.n for r in rows]), [(r.k, r.p, r.seed) for r in rows])


def fast_programs(programs):
    """`programs` compiled with helpers.FAST, each on its first call per argument shapes and
    shardings (`lower(..).compile(..)`: what it donates, it still donates)."""
    def compiling(fn):
        compiled = {}

        def call(*args):
            # Python ints are the programs' static arguments (batch counts): part of the key,
            # baked into the compiled program and so not passed to it.
            leaves, tree = jax.tree.flatten(args)
            key = (tree, tuple(x if isinstance(x, int) else
                               (jax.typeof(x), getattr(x, "sharding", None)) for x in leaves))
            if key not in compiled:
                compiled[key] = fn.lower(*args).compile(compiler_options=FAST)
            return compiled[key](*[a for a in args if not isinstance(a, int)])
        return call

    return dataclasses.replace(programs, **{field.name: compiling(getattr(programs, field.name))
                                            for field in dataclasses.fields(programs)})


@contextlib.contextmanager
def fast_trainer_compiles():
    """Within: the trainer's programs compile with FAST. For tests whose checks do not
    depend on XLA's optimisations (bitwise checks across device layouts keep the defaults)."""
    from relgraph_jax.train import programs as programs_lib
    with pytest.MonkeyPatch.context() as patch:
        original = programs_lib.build
        patch.setattr(programs_lib, "build", lambda *args: fast_programs(original(*args)))
        yield


@contextlib.contextmanager
def shared_trainer_compiles(fast: bool = True):
    """Within: runs of one sweep (a resume chain, a run and its reference) build each of
    the trainer's programs once, compiled with FAST as in `fast_trainer_compiles` (or, not
    `fast`, with XLA's defaults, for bitwise checks across device layouts), and
    initialise each graph once. Both are pure functions of the model and the training
    settings (the optimiser aside, which the runs within must share), so every run
    computes what it would alone, without paying the compiles again."""
    from relgraph_jax.train import programs as programs_lib
    from relgraph_jax.train import trainer
    programs, inits = {}, {}
    build, init = programs_lib.build, trainer._init_graph_variants

    def shared_build(cfg, batches, mesh, variant_batch):
        key = (cfg.model, cfg.steps_per_epoch, cfg.bn_group_size, cfg.compute_dtype,
               cfg.batch_spec, batches, mesh, variant_batch)
        if key not in programs:
            built = build(cfg, batches, mesh, variant_batch)
            programs[key] = fast_programs(built) if fast else built
        return programs[key]

    def shared_init(config, graph, widths, seeds, sample):
        key = (str(config.model), graph, tuple(widths), tuple(seeds), sample.shape)
        if key not in inits:
            inits[key] = init(config, graph, widths, seeds, sample)
        return inits[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(programs_lib, "build", shared_build)
        patch.setattr(trainer, "_init_graph_variants", shared_init)
        yield


def imagenet_train_image(image, size, rng):
    """The paper's ImageNet train transform made whole with numpy: the uint8 crop of
    `imagenet.train_crop` plus its lighting offset, float32 on the 0-255 scale. What a
    stream's images + lighting (summed on the device in training) must equal."""
    crop, offset = imagenet.train_crop(image, size, rng)
    return crop.astype(np.float32) + offset


def free_port() -> int:
    """A TCP port free on this host: the coordinator address of a jax.distributed test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(script, cwd, timeout: float = 600) -> list[str]:
    """Runs `python script 0` and `python script 1` side by side (processes of one
    jax.distributed run; each sets its own fake device count, so XLA_FLAGS is not
    inherited) and returns their outputs, once both have exited 0. Both are killed when
    `timeout` seconds pass (processes waiting for each other in a collective fail the
    test then, instead of hanging it)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [subprocess.Popen([sys.executable, str(script), str(i)], env=env, cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    deadline = time.monotonic() + timeout
    try:
        outputs = [p.communicate(timeout=max(deadline - time.monotonic(), 1))[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    return outputs


@contextlib.contextmanager
def registrations_undone(*module_prefixes: str):
    """Whatever the block registers (graph kinds, families, schedules, optimisers, losses,
    config fields) is unregistered after it, and the modules it imported under
    `module_prefixes` are forgotten: a test worker's other files see the built-ins only."""
    from relgraph_jax.config_fields import CONFIG_FIELDS
    from relgraph_jax.graphs import GRAPH_KINDS
    from relgraph_jax.models import FAMILIES
    from relgraph_jax.train import losses, optim, schedules
    registries = (GRAPH_KINDS, FAMILIES, schedules.SCHEDULES, optim.OPTIMIZERS, losses.LOSSES,
                  CONFIG_FIELDS)
    before = [set(r.names()) for r in registries]
    try:
        yield
    finally:
        for registry, names in zip(registries, before):
            for name in set(registry.names()) - names:
                registry.unregister(name)
        for name in [m for m in sys.modules if m.startswith(module_prefixes)]:
            del sys.modules[name]
