"""Shared parts of the experiment configs: the paper's two training recipes and data sets.

Each config file calls `experiment(...)` with its model family, graph set and recipe,
and `runlocal(config)` for its small smoke variant (`--config=FILE.py:runlocal`).
"""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from relgraph_jax import config_fields, extensions, models
from relgraph_jax.train import validate  # noqa: F401  (imports every module with rows)

CIFAR10_SHAPE = (32, 32, 3)
DIGITS_SHAPE = (8, 8, 1)
# Arguments of the CIFAR-10 configs: the JPEG copy instead of the official release, the
# smoke run.
CIFAR10_OPTIONS = ("jpeg", "runlocal")


def cifar10_data(jpeg: bool = False) -> ml_collections.ConfigDict:
    """CIFAR-10; random crop 32 with 4-pixel padding and flip. `validation_size`: training
    examples held out for a live search's ranking (0: none).

    The official release (source="cifar"): `cifar-10-python.tar.gz`, downloaded into
    `cache_dir` on first use (None: ~/.cache/relgraph_jax) and checked against its
    published MD5; `path` names a tarball already downloaded. With `jpeg`, the JPEG copy
    of CIFAR-10 as an arrays .npz (`python -m relgraph_jax.data.prepare_cifar10`), whose
    `path` must be given: it is lossy (1-3 points more error than the original), so
    compare graphs only on the same copy.
    """
    if jpeg:
        return ml_collections.ConfigDict(dict(
            source="arrays", name="cifar10", path=config_dict.placeholder(str), augment=True,
            crop_pad=4, flip=True, validation_size=0))
    return ml_collections.ConfigDict(dict(
        source="cifar", name="cifar10", path=config_dict.placeholder(str),
        cache_dir=config_dict.placeholder(str), augment=True, crop_pad=4, flip=True,
        validation_size=0))


def imagenet_data() -> ml_collections.ConfigDict:
    """ImageNet, streamed; training crops 224 with flips, test centre crop 224.

    Two sources (docs/data.md): tfds (prepared in the array_record format; `tfds_data_dir`
    where it lives, None: tfds's default) or, with `source="imagefolder"`, the usual
    folders: `path` holding train/ and val/ with one subfolder per class. `workers`
    decoding processes per host (None: the usable cores, at most 16: each is a process
    importing jax, and evaluation starts a second pool), `prefetch` chunks ahead each.
    (A validation split of the stream is not supported yet: validation_size stays 0.)
    """
    return ml_collections.ConfigDict(dict(
        source="tfds", name="imagenet2012", path=config_dict.placeholder(str),
        tfds_data_dir=config_dict.placeholder(str), augment=True, flip=True, image_size=224,
        workers=config_dict.placeholder(int), prefetch=2, validation_size=0))


def digits_data() -> ml_collections.ConfigDict:
    """scikit-learn's bundled 8x8 digits (offline), not augmented: crops and flips change
    what a digit means."""
    return ml_collections.ConfigDict(dict(source="digits", name="digits", augment=False,
                                          validation_size=0))


def train(*, batch_size: int, epochs: int, lr: float, weight_decay: float,
          eval_batch_size: int, **others) -> ml_collections.ConfigDict:
    """A recipe: the fields every config states; `others` override the table's defaults
    (relgraph_jax.config_fields: SGD with Nesterov momentum 0.9, the cosine schedule,
    cross-entropy, evaluation every epoch, ...).

    BatchNorm (docs/batchnorm.md): statistics over groups of `bn_group_size` examples (0:
    the whole batch), running statistics re-estimated from `precise_bn_samples` training
    images after every epoch (0: off).
    Speed settings (they change no result beyond float rounding): `variant_batch` variants
    vmapped at a time on a device (0: all of them; small models gain from it, ImageNet
    models need 1 to bound activation memory).
    """
    return ml_collections.ConfigDict(dict(
        batch_size=batch_size, epochs=epochs, lr=lr, weight_decay=weight_decay,
        eval_batch_size=eval_batch_size, **others))


def cifar10_recipe() -> ml_collections.ConfigDict:
    """MLP / CIFAR-10: batch 128, lr 0.1, 200 epochs, weight decay 5e-4."""
    return train(batch_size=128, epochs=200, lr=0.1, weight_decay=5e-4, eval_batch_size=1000,
                 variant_batch=0)


def cifar10_conv_experiment(family: str, arg: str | None) -> ml_collections.ConfigDict:
    """graph2nn's CIFAR-10 conv study for `family` (its CIFAR CNN and ResNets): the CIFAR-10
    recipe over 100 epochs with precise BN from 1024 images, the 52-graph set and the
    complete graph, 5 seeds, the CIFAR stem stated (never left to the family). Options
    `jpeg` and `runlocal` as the MLP's; variant_batch=4 only bounds activation memory."""
    options = get_options(arg, CIFAR10_OPTIONS)
    recipe = cifar10_recipe()
    recipe.update(epochs=100, precise_bn_samples=1024, variant_batch=4)
    config = experiment(family, graphs="paper:n64_52;complete:n=64", seeds=5,
                        input_shape=CIFAR10_SHAPE, data=cifar10_data(jpeg="jpeg" in options),
                        train_cfg=recipe)
    config.model.stem = "cifar"
    if "runlocal" in options:
        config = runlocal(config, graphs="ws:n=8,k=4,p=0.3,seed=1;complete:n=8")
    return config


def transformer_recipe(*, batch_size: int, epochs: int, lr: float, eval_batch_size: int,
                       warmup_steps: int) -> ml_collections.ConfigDict:
    """A Vision Transformer's recipe (DeiT's, docs/transformers.md): AdamW (weight decay
    0.05 on kernels only: no biases, LayerNorm or embeddings), a linear warmup over
    `warmup_steps` steps from 0 then a per-step cosine, label smoothing 0.1 and gradient
    clipping at global norm 1. No BatchNorm, so neither groups nor precise BN."""
    return train(batch_size=batch_size, epochs=epochs, lr=lr, weight_decay=0.05,
                 eval_batch_size=eval_batch_size, optimizer="adamw", decay="kernels",
                 schedule="cosine_steps", warmup=warmup_steps, warmup_unit="steps",
                 warmup_factor=0.0, loss="smoothed_cross_entropy", label_smoothing=0.1,
                 clip_norm=1.0)


def imagenet_recipe() -> ml_collections.ConfigDict:
    """CNN / ResNets on ImageNet: batch 256, lr 0.1, 100 epochs, weight decay 1e-4.

    As the authors' 8 GPUs without synchronised BatchNorm: statistics over groups of 32
    images; precise BN from 1024 training images after every epoch.
    """
    return train(batch_size=256, epochs=100, lr=0.1, weight_decay=1e-4, eval_batch_size=200,
                 bn_group_size=32, precise_bn_samples=1024)


def experiment(model_name: str, *, graphs: str, seeds: int, data: ml_collections.ConfigDict,
               train_cfg: ml_collections.ConfigDict, input_shape: tuple | None = None,
               imports: tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """A full config: every field of the config-field table at its default (so each can be
    overridden on the command line), the family's paper model block, graphs x seeds, the
    data and the recipe. `input_shape`: the images' (H, W, C), unless data.image_size
    gives it. `imports`: modules registering the config's own graph kinds, families,
    schedules or fields, imported first and recorded (config.imports) for every tool."""
    extensions.load(imports)
    config = config_fields.defaults()
    config.imports = tuple(imports)
    config.model = models.default_config(model_name)
    config.graphs = graphs
    config.seeds = seeds
    if input_shape is not None:
        config.input_shape = tuple(input_shape)
    config.data = data
    config.train.update(train_cfg)
    return config


def runlocal(config: ml_collections.ConfigDict, graphs: str,
             tiny: bool = True) -> ml_collections.ConfigDict:
    """The smoke variant: the family's tiny model (its registry entry's `tiny`: few nodes,
    narrow, shallow, so even a conv family compiles in seconds) on the bundled digits (8x8,
    10 classes), `graphs` (with the tiny model's node count), one seed, one short epoch.
    Runs offline on a CPU in minutes.

    tiny=False keeps the config's model: the MLP configs' (small on 8x8 digits anyway,
    their smoke runs keep the paper's 64-node graphs) and where the graphs fix the node
    count (a brain network has 71, 52 or 30 nodes and no recipe at fewer channels than
    nodes, so a tiny model's narrow layers could not take it).
    """
    if tiny:
        config.model.update(models.FAMILIES[config.model.name].tiny)
    config.graphs = graphs
    config.seeds = 1
    config.input_shape = DIGITS_SHAPE
    config.model.num_classes = 10
    config.data = digits_data()
    config.train.batch_size = 32
    config.train.epochs = 1
    config.train.eval_batch_size = 100
    config.train.steps_per_call = 8
    config.train.log_every_steps = 10
    # Ghost BatchNorm stays on (two groups of 16) so that the smoke run exercises it.
    config.train.bn_group_size = min(config.train.bn_group_size, 16)
    return config


def get_arg(arg: str | None) -> str:
    """The config-file argument (`--config=FILE.py:ARG`): "" (the paper's run) or "runlocal"."""
    return "runlocal" if get_options(arg, ("runlocal",)) else ""


def get_options(arg: str | None, allowed: tuple[str, ...]) -> set[str]:
    """The config-file argument as a set of comma-separated options (`FILE.py:jpeg,runlocal`),
    each one of `allowed`."""
    options = [o for o in (arg or "").split(",") if o]
    unknown = [o for o in options if o not in allowed]
    if unknown or len(set(options)) != len(options):
        raise ValueError(f"unknown config argument {arg!r}; allowed: none (the paper's run) "
                         f"or any of {list(allowed)}, comma-separated, each once")
    return set(options)
