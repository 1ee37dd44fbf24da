"""The extension points as a user meets them: schedules, optimisers, losses, config fields
and `config.imports`. A throwaway entry, registered with no other edit, must show up in
the listings, the error messages and the docs tables; the docs tables must equal the
registries; a clash or an unimportable module is refused in one line; and a workdir made
before the field table existed must still resume.
"""
import json
import pathlib
import re

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments.configs import common, mlp_cifar10, quickstart, resnet34_imagenet
from relgraph_jax import config_fields, extensions, results
from relgraph_jax.config_fields import ConfigField
from relgraph_jax.registry import Component
from relgraph_jax.train import losses, optim, schedules, trainer
from relgraph_jax.train.validate import validate_config
from relgraph_jax.train.workdir import config_identity
from helpers import fast_trainer_compiles, registrations_undone

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = pathlib.Path(__file__).parent / "fixtures"

# (registry, docs file, marker name, config field choosing an entry)
COMPONENTS = [(schedules.SCHEDULES, "schedules", "train.schedule"),
              (optim.OPTIMIZERS, "optimizers", "train.optimizer"),
              (losses.LOSSES, "losses", "train.loss")]


def _docs_table(path: str, marker: str) -> str:
    text = (ROOT / path).read_text()
    found = re.search(f"<!-- {marker}: begin -->\n(.*?)\n<!-- {marker}: end -->", text, re.S)
    assert found, f"{path} lacks the {marker} markers"
    return found.group(1)


@pytest.mark.parametrize("registry, marker, field", COMPONENTS)
def test_docs_tables_are_the_registries(registry, marker, field):
    assert _docs_table("docs/extending.md", marker) == registry.markdown_table()


def test_config_docs_table_is_the_field_table():
    assert _docs_table("docs/config.md", "config fields") == config_fields.markdown_table()


def _bad_value_message(field: str, value) -> str:
    config = quickstart.get_config()
    section, key = field.split(".")
    config[section][key] = value
    with pytest.raises(ValueError) as error:
        validate_config(config)
    return str(error.value)


@pytest.mark.parametrize("registry, marker, field", COMPONENTS)
def test_a_registered_component_is_listed_everywhere(registry, marker, field):
    builtin = registry.names()[0]
    assert f"`{builtin}`" in registry.markdown_table()
    with registry.registered("throwaway", Component("throwaway", "a test's entry", None),
                             origin="tests"):
        assert "throwaway" in registry.names()
        assert "| `throwaway` | a test's entry |" in registry.markdown_table()
        message = _bad_value_message(field, "nope")
        assert message == (f"{field}='nope': allowed [{', '.join(map(repr, registry.names()))}] "
                           "(one of your own: name its module in config.imports, "
                           "docs/extending.md)")
        assert "'throwaway'" in message
    assert "throwaway" not in registry.names()
    with pytest.raises(ValueError, match=rf"^{registry.what} '{builtin}' is already registered "
                                         rf"\(by relgraph_jax\.train\.\w+\); choose another name$"):
        registry.register(builtin, Component(builtin, "again", None))


def test_the_chosen_schedule_optimizer_and_loss_are_the_ones_trained_with():
    """A constant-0.5 schedule with momentum-free SGD updates by -0.5 lr g (hand-computed);
    the cosine one by -lr g in epoch 0 and -lr (1 + cos(pi / 2)) / 2 g in epoch 1 of 2."""
    tc = ml_collections.ConfigDict(dict(lr=0.1, weight_decay=0.0, momentum=0.0, nesterov=False,
                                        epochs=2, schedule="half", optimizer="sgd"))
    grad, params = jnp.array([1.0, -2.0]), jnp.zeros(2)

    def updates(tx, steps):
        state = tx.init(params)
        out = []
        for _ in range(steps):
            update, state = tx.update(grad, state, params)
            out.append(np.asarray(update))
        return out

    half = Component("half", "constant 0.5", lambda train_cfg, steps_per_epoch: lambda c: 0.5)
    with schedules.SCHEDULES.registered("half", half):
        np.testing.assert_allclose(updates(optim.make_optimizer(tc, 1), 1)[0], [-0.05, 0.1])
    tc.schedule = "cosine"
    first, second = updates(optim.make_optimizer(tc, 1), 2)
    np.testing.assert_allclose(first, [-0.1, 0.2], rtol=1e-6)
    np.testing.assert_allclose(second, [-0.05, 0.1], rtol=1e-6)
    logits, labels = jnp.array([[2.0, 0.0], [0.0, 0.0]]), jnp.array([0, 1])
    want = [np.log1p(np.exp(-2.0)), np.log(2.0)]
    np.testing.assert_allclose(losses.LOSSES["cross_entropy"].make(tc)(logits, labels), want,
                               rtol=1e-6)


def test_a_new_field_is_one_row_and_old_workdirs_resume():
    """Configs made before the field table (their config.json, recorded by the previous
    code) keep their identity; a new row reaches the configs, the checks and the docs
    table, and changes a workdir's identity only when set away from its default."""
    before = json.loads((FIXTURES / "configs_before_field_table.json").read_text())
    for name, module in (("quickstart:None", quickstart), ("mlp_cifar10:None", mlp_cifar10),
                         ("resnet34_imagenet:None", resnet34_imagenet)):
        now = validate_config(module.get_config()).to_dict()
        assert config_identity(before[name]) == config_identity(now)
    row = ConfigField("train.warmup_epochs", 0, "a test's field",
                      config_fields.int_at_least_zero("0 = none"))
    config_fields.register_config_fields(row)
    try:
        assert "| `train.warmup_epochs` | `0` |  | a test's field |" in config_fields.markdown_table()
        config = validate_config(quickstart.get_config())
        assert config.train.warmup_epochs == 0
        assert config_identity(config.to_dict()) == config_identity(before["quickstart:None"])
        config.train.warmup_epochs = 5
        assert config_identity(config.to_dict())["train.warmup_epochs"] == 5
        config.train.warmup_epochs = -1
        with pytest.raises(ValueError, match=r"^train\.warmup_epochs=-1: must be >= 0 \(0 = none\)$"):
            validate_config(config)
        with pytest.raises(ValueError, match=r"^config field 'train.warmup_epochs' is already "
                                             r"registered \(by (tests\.)?test_registries\)"):
            config_fields.register_config_fields(row)
    finally:
        config_fields.CONFIG_FIELDS.unregister("train.warmup_epochs")


def test_a_row_that_could_not_work_is_refused_when_registered():
    """A top-level field named like a block, a check factory passed uncalled (it would
    accept everything), a default its own check refuses: each fails at registration."""
    cases = [(ConfigField("train", 1, "shadows the block"),
              r"^config field 'train' would replace the train block; choose another name$"),
             (ConfigField("train.knob", 0.5, "x", config_fields.number),
              r"^config field 'train\.knob': its check returned a value instead of raising"),
             (ConfigField("train.knob", 0, "x", config_fields.positive_int),
              r"^train\.knob=0: must be a positive integer$"),
             (ConfigField("grid.momentum", (), "x"),
              r"^config field 'grid\.momentum': a grid sweeps only \['lr', 'weight_decay'\]")]
    for row, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            config_fields.register_config_fields(row)
        assert row.name not in config_fields.CONFIG_FIELDS


def test_unknown_and_missing_fields_name_what_is_allowed():
    config = quickstart.get_config()
    config.train.lr_decay = 0.1
    with pytest.raises(ValueError, match=r"^unknown config key\(s\) train\.lr_decay; allowed in "
                                         r"train: \['adam_b1', "):
        validate_config(config)
    config = quickstart.get_config()
    del config.train["lr"]
    with pytest.raises(ValueError, match=r"^config is missing train\.lr$"):
        validate_config(config)


def test_input_shape_follows_the_image_size():
    config = resnet34_imagenet.get_config()
    config.data.image_size = 32
    assert validate_config(config).input_shape == (32, 32, 3)
    config.input_shape = (64, 64, 3)
    with pytest.raises(ValueError, match=r"^config.input_shape=\(64, 64, 3\) contradicts "
                                         r"data.image_size=32, which sets it"):
        validate_config(config)


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    """A folder on sys.path for a test's own modules, which are forgotten afterwards with
    whatever they registered."""
    monkeypatch.syspath_prepend(str(tmp_path))
    with registrations_undone("user_"):
        yield tmp_path


def test_imports_register_and_are_refused_in_one_line(user_modules):
    (user_modules / "user_schedule.py").write_text(
        "from relgraph_jax.registry import Component\n"
        "from relgraph_jax.train.schedules import SCHEDULES\n"
        "SCHEDULES.declare(Component('flat', 'constant', lambda c, s: lambda count: 1.0))\n")
    (user_modules / "user_clash.py").write_text(
        "from relgraph_jax.registry import Component\n"
        "from relgraph_jax.train.schedules import SCHEDULES\n"
        "SCHEDULES.declare(Component('cosine', 'mine', None))\n")
    (user_modules / "user_broken.py").write_text("import no_such_package_here\n")
    (user_modules / "user_raises.py").write_text("raise RuntimeError('no GPU here')\n")
    config = quickstart.get_config()
    config.imports = ("user_schedule",)
    config.train.schedule = "flat"
    assert validate_config(config).train.schedule == "flat"
    assert schedules.SCHEDULES.items()[-1][0] == "flat"
    cases = [(("user_clash",), "config.imports: importing 'user_clash' failed: learning-rate "
              "schedule 'cosine' is already registered (by relgraph_jax.train.schedules); "
              "choose another name"),
             (("user_broken",), "config.imports: importing 'user_broken' failed "
              "(ModuleNotFoundError: No module named 'no_such_package_here')"),
             (("user_missing",), "config.imports: cannot import 'user_missing' "
              "(ModuleNotFoundError: No module named 'user_missing'); it must be importable "
              "from the working directory or the Python path"),
             (("user_raises",), "config.imports: importing 'user_raises' failed "
              "(RuntimeError: no GPU here)"),
             ("user_schedule", "config.imports='user_schedule': must be a tuple of module "
              "names, e.g. ('examples.extending.mobius',)"),
             (("a,b",), "config.imports: 'a,b' is not a module name (dotted words, as in "
              "examples.extending.mobius, not a file path); several go in a tuple: "
              "--config.imports=\"('a', 'b')\"")]
    for imports, message in cases:
        with pytest.raises(ValueError) as error:
            extensions.load(imports)
        assert str(error.value) == message


def test_experiment_records_its_imports(user_modules):
    (user_modules / "user_field.py").write_text(
        "from relgraph_jax.config_fields import ConfigField, register_config_fields\n"
        "register_config_fields(ConfigField('train.user_knob', 3, 'a test field'))\n")
    config = common.experiment(
        "mlp", graphs="complete:n=8", seeds=1, input_shape=common.DIGITS_SHAPE,
        data=common.digits_data(), imports=("user_field",),
        train_cfg=common.train(batch_size=8, epochs=1, lr=0.1, weight_decay=0.0,
                               eval_batch_size=8))
    assert (config.imports, config.train.user_knob) == (("user_field",), 3)


def test_the_chosen_loss_is_the_one_trained_with(tmp_path):
    """Twice the cross-entropy, at a learning rate too small to move the weights, records
    twice the cross-entropy run's training and test losses (the same model, data, seeds)."""
    def losses_recorded(loss: str) -> tuple[float, float]:
        config = quickstart.get_config()
        config.model.update(nodes=8, width=16, stem_width=16)
        config.graphs, config.train.loss = "complete:n=8", loss
        config.train.update(batch_size=128, epochs=1, lr=1e-9, steps_per_call=11)
        workdir = tmp_path / loss
        trainer.train_and_evaluate(config, str(workdir))
        record, = results.read_records(str(workdir / results.RESULTS_FILE))
        return record["train_loss"], record["test_loss"]

    twice = Component("twice", "2 x cross-entropy",
                      lambda train_cfg: lambda logits, labels: 2 * losses.cross_entropy(logits, labels))
    with fast_trainer_compiles(), losses.LOSSES.registered("twice", twice):
        np.testing.assert_allclose(losses_recorded("twice"),
                                   2 * np.array(losses_recorded("cross_entropy")), rtol=1e-5)
