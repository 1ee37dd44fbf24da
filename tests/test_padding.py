"""The trainer's padding rule is inert: a narrow variant zero-padded into a wider model
computes the same logits, batch statistics (where it has BatchNorm) and gradients, and its
padding gets zero gradient (so SGD with weight decay keeps it exactly zero)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import FAST, init_shapes, init_variables
from relgraph_jax import models
from relgraph_jax.train import variants

GRAPH = "ws:n=8,k=3,p=0.3,seed=2"
# family -> (narrow widths, wide widths, model-field overrides that keep it small). Widths
# are a base width or per-stage lists that grow by different amounts per stage, as the
# original code's search leaves them; both sides of a case share one model structure.
FAMILIES = {
    "mlp": (16, 27, dict(nodes=8, stem_width=16)),
    "resnet34sep": ((9, 18, 35, 72), (13, 25, 52, 100), dict(nodes=8, stem_width=8, depths=(1, 1, 1, 1))),
    "resnet50": (8, 11, dict(nodes=8, stem_width=8, depths=(1, 1, 1, 1))),
    "efficientnet_b0": (22, 31, dict(nodes=4, stem_width=8, head_width=16, base_widths=(16, 24, 40),
                                     depths=(1, 2, 1), kernels=(3, 3, 5), strides=(1, 2, 2),
                                     expand_ratios=(1, 6, 6))),
    # A first stage narrower than the 6 nodes: its layers use the graph's recipe at 5 nodes.
    "efficientnet_b0/narrow_stage": ((5, 24, 40), (7, 30, 47), dict(
        nodes=6, stem_width=8, head_width=16, base_widths=(16, 24, 40), depths=(1, 2, 1),
        kernels=(3, 3, 5), strides=(1, 2, 2), expand_ratios=(1, 6, 6))),
    # Only the MLP width pads (a wider model width would change LayerNorm and the heads).
    "vit": ((16, 40), (16, 53), dict(nodes=4, depth=1, heads=2, patch=8)),
}
GRAPHS = {8: GRAPH, 6: "ws:n=6,k=4,p=0.3,seed=2", 4: "ws:n=4,k=2,p=0.3,seed=2"}


def _loss_and_grads(model, variables, x, y):
    def loss_fn(params):
        logits, updated = model.apply({**variables, "params": params}, x, train=True,
                                      mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, (logits, updated.get("batch_stats", {}))
    return jax.jit(jax.value_and_grad(loss_fn, has_aux=True), compiler_options=FAST)(variables["params"])


def _crop(tree, like):
    return jax.tree.map(lambda a, b: np.asarray(a)[tuple(slice(0, s) for s in b.shape)], tree, like)


def _outside(tree, like):
    """Everything of `tree` outside the leading corner shaped like `like`, flattened."""
    def one(a, b):
        a = np.array(a)
        a[tuple(slice(0, s) for s in b.shape)] = 0
        return a.ravel()
    return np.concatenate([np.zeros(0)] + jax.tree.leaves(jax.tree.map(one, tree, like)))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_padded_variant_matches_its_unpadded_model(family):
    narrow_w, wide_w, shrink = FAMILIES[family]
    cfg = models.default_config(family.split("/")[0])
    cfg.update(dict(num_classes=10, **shrink))
    graph = GRAPHS[shrink["nodes"]]
    narrow = models.build(cfg, graph, width=narrow_w)
    wide = models.build(cfg, graph, width=wide_w)
    assert models.structure(cfg, graph, narrow_w) == models.structure(cfg, graph, wide_w)
    x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    y = jnp.arange(4) % 10
    # The real init, not host-drawn variables: its zeroed last BatchNorm of each residual
    # block keeps float rounding well inside the tolerances below.
    small = init_variables(narrow, x, seed=1)
    big = variants.pad_to(small, init_shapes(wide, x))

    (loss_s, (logits_s, stats_s)), grads_s = _loss_and_grads(narrow, small, x, y)
    (loss_b, (logits_b, stats_b)), grads_b = _loss_and_grads(wide, big, x, y)

    np.testing.assert_allclose(logits_b, logits_s, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss_b, loss_s, rtol=1e-5)
    for got, want in zip(jax.tree.leaves(_crop(grads_b, grads_s)), jax.tree.leaves(grads_s)):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-6)
    for got, want in zip(jax.tree.leaves(_crop(stats_b, stats_s)), jax.tree.leaves(stats_s)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert np.all(_outside(grads_b, grads_s) == 0.0)
    assert np.all(_outside(stats_b, stats_s) == 0.0)  # padded running means and variances
