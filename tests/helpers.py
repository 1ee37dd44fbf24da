"""Helpers for tests that run whole models: cheap compiles, initial variables, masks.

Compiling (XLA's default CPU optimisation and its fusion emitters) and a model's random
init run op by op cost far more than the small forward and backward passes these tests
check, and neither changes what the checks compare: the tests compile with FAST, and
draw variables on the host or run the model's init compiled.
"""
import contextlib
import dataclasses
import functools

import jax
import numpy as np
import pytest

from relgraph_jax import relational
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
    """params and batch_stats of the model's shapes, drawn on the host (compiling a model's
    random init costs more than its forward pass); BatchNorm variances are 1."""
    rng = np.random.default_rng(seed)
    shapes = init_shapes(model, x)

    def draw(path, leaf):
        if path[-1].key == "var":
            return np.ones(leaf.shape, leaf.dtype)
        return (0.3 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)

    return {k: jax.tree_util.tree_map_with_path(draw, shapes[k]) for k in ("params", "batch_stats")}


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
