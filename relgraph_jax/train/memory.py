"""How much memory a sweep takes, estimated from its layer lists before anything is built.

No model is traced or compiled, so the trainer can refuse a sweep that would not fit
(`validate.check_memory`) in seconds, and benchmarks/throughput.py sizes its default
variant counts with it, instead of either being killed by the out-of-memory killer
minutes into compiling. Per device, in bytes (float32 = 4):

- state: the device's share of every bucket's variant slots, each at its bucket's widest
  widths: parameters (graph layers as their whole dense kernels on the mask path, and as
  an upper bound on the blocks path; the gather path's degree slots), the optimiser's
  state (SGD's momentum one more copy, AdamW's moments two), BatchNorm statistics and the
  graph's arrays
  (impl="mask": an (in, out) mask per graph layer; "gather": index tables);
- step: what the variants a device runs at once need (train.variant_batch of them; 0:
  all its slots): STEP_PARAM_COPIES more copies of the parameters (gradient, optimiser
  temporaries) and ACTIVATION_COPIES values per layer output for each example of the
  device's share of the batch (kept for the backward pass), or of an evaluation batch
  (forward only, 2 copies), plus every seed's augmented batch; the largest bucket's;
- data: a data set held on the devices (uint8 images, int32 labels, each seed's order).

The CPU's devices share the host's memory, which during start-up also holds the host
copy of the largest bucket's state being placed on them. Checked on the MLP (CIFAR-10
shapes, 52 paper graphs, 4 buckets): the state per slot matches XLA's argument sizes
(benchmarks/RESULTS.md's MiB per variant), and the whole, 5.3 GiB, is 80 % of the
process's measured peak (6.6 GiB, which also holds jax, XLA's compiler and the benchmark's
own buffers). It is an estimate: the trainer refuses only what it says cannot fit.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from relgraph_jax import config_fields
from relgraph_jax import models as models_lib
from relgraph_jax import relational
from relgraph_jax.train import mesh as mesh_lib
from relgraph_jax.train import optim
from relgraph_jax.train import variants as variants_lib

FLOAT = 4
STEP_PARAM_COPIES = 3
ACTIVATION_COPIES = 4
EVAL_ACTIVATION_COPIES = 2


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Bytes per device (state, step, data), and what the host holds besides (`host`)."""
    state: int
    step: int
    data: int
    host: int

    @property
    def per_device(self) -> int:
        return self.state + self.step + self.data

    def on_host(self, local_devices: int) -> int:
        """All of a host's share, as on the CPU, where its devices' memory is the host's."""
        return self.per_device * local_devices + self.host

    def breakdown(self) -> str:
        from relgraph_jax.machine import gib
        return (f"per device: state {gib(self.state)}, step {gib(self.step)}, data "
                f"{gib(self.data)}")


@dataclasses.dataclass(frozen=True)
class _Slot:
    """One variant slot of a bucket: bytes of its state, and per-example element counts."""
    state: int
    params: int
    activations: int  # floats of every layer's output for one example


@functools.lru_cache(maxsize=None)
def _state_copies(optimizer: str) -> int:
    """Copies of the parameters an optimiser's state holds, read from the shapes of its
    state for a probe parameter (SGD 1, AdamW 2; a user's optimiser counts as it is)."""
    probe = 1024
    train_cfg = config_fields.defaults().train
    train_cfg.update(dict(optimizer=optimizer, lr=0.1, weight_decay=0.0, epochs=1))
    tx = optim.make_optimizer(train_cfg, steps_per_epoch=1)
    state = jax.eval_shape(tx.init, {"kernel": jax.ShapeDtypeStruct((probe,), jnp.float32)})
    return sum(leaf.size for leaf in jax.tree.leaves(state)) // probe


def _slot(config, graph, widths, input_shape) -> _Slot:
    impl = config.model.get("impl", "mask")
    nodes = config.model.nodes
    degree = relational.max_in_degree(graph)
    params = stats = graph_arrays = activations = 0
    for layer in models_lib.layer_list(config.model, graph, widths, input_shape):
        if layer.kind == "norm":
            params += 2 * layer.cout
            stats += 2 * layer.cout
            continue
        if layer.kind == "embedding":
            params += layer.cin * layer.cout
            continue
        if layer.kind == "product":
            activations += layer.cout * layer.positions
            continue
        if layer.kind == "depthwise":
            weights = layer.window * layer.cout
        elif layer.kind == "graph" and impl == "gather":
            weights = (layer.window * nodes * degree * -(-layer.cin // nodes)
                       * -(-layer.cout // nodes))
            graph_arrays += 3 * nodes * degree  # int32 index tables
        else:
            weights = layer.window * layer.cin * layer.cout
            if layer.kind == "graph" and impl == "mask":
                graph_arrays += layer.cin * layer.cout
        params += weights + (layer.cout if layer.bias else 0)
        activations += layer.cout * layer.positions
    copies = 1 + _state_copies(config.train.get("optimizer", "sgd"))
    return _Slot(FLOAT * (copies * params + stats + graph_arrays), params, activations)


def estimate(config, variant_list, num_train: int, num_test: int, devices: int,
             resident: bool = True) -> Estimate:
    """The sweep's memory on `devices` devices (config.mesh: its "data" axis splits them)."""
    train_cfg = config.train
    input_shape = tuple(config.input_shape)
    variant_devices = devices // config.mesh.data
    groups = variants_lib.width_buckets(variant_list, train_cfg.width_buckets,
                                        variants_lib.padded_cost(config, input_shape))
    state = step = host = 0
    image = math.prod(input_shape)
    seeds = len({v.seed for v in variant_list})
    batch = -(-train_cfg.batch_size // config.mesh.data)
    eval_batch = min(train_cfg.eval_batch_size, num_test)
    for group in groups:
        slot = _slot(config, variants_lib.layout_graph(group), variants_lib.widest(group),
                     input_shape)
        slots = mesh_lib.slots_on(len(group), variant_devices, train_cfg.variant_batch)
        per_device = slots // variant_devices
        at_once = train_cfg.variant_batch or per_device
        state += per_device * slot.state
        host = max(host, slots * slot.state)
        work = max(batch * ACTIVATION_COPIES, eval_batch * EVAL_ACTIVATION_COPIES)
        step = max(step, at_once * FLOAT * (STEP_PARAM_COPIES * slot.params
                                            + work * slot.activations))
    step += seeds * batch * image * FLOAT * 2  # every seed's batch, as uint8 -> float32
    data = ((num_train + num_test) * (image + FLOAT) + seeds * num_train * FLOAT
            if resident else 0)
    return Estimate(state, step, data, host)
