"""relgraph_jax.data: sources, validation errors, on-device augmentation, ImageNet stream
(image folders, workers and processes: test_imagenet_input.py)."""
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from relgraph_jax import data
from relgraph_jax.data import imagenet, prepare_cifar10
from relgraph_jax.data.testing import mock_tfds, write_arrays_npz
from helpers import imagenet_train_image


# ---- config blocks ------------------------------------------------------------------
@pytest.mark.parametrize("cfg, error, fragment", [
    ({"source": "cifar10"}, ValueError, "did you mean source='cifar', name='cifar10'"),
    ({"source": "data_cache/c.npz"}, ValueError, "path='data_cache/c.npz'"),
    ({"source": "tfds", "name": "cifar100"}, ValueError, "allowed: ['cifar10', 'imagenet2012'"),
    ({"source": "tfds", "name": "digits"}, ValueError, "source='digits'"),
    ({"source": "digits", "name": "mnist"}, ValueError, "source='tfds', name='mnist'"),
    ({"source": "tfds", "name": "mnist", "path": "x.npz"}, ValueError,
     "only used with source in ['arrays', 'imagefolder', 'cifar']"),
    ({"source": "arrays", "path": "x.npz", "tfds_data_dir": "/d"}, ValueError,
     "only used with source='tfds'"),
    ({"source": "arrays"}, ValueError, "prepare_cifar10"),
    ({"source": "digits", "augmnet": True}, ValueError, "unknown data config field(s) ['augmnet']"),
    ({"source": "digits", "augment": "yes"}, TypeError, "data.augment must be True or False"),
    ({"source": "digits", "crop_pad": -1}, ValueError, "data.crop_pad must be an integer >= 0"),
    ({"source": "digits", "crop_style": "zero"}, ValueError,
     "data.crop_style='zero': allowed ['graph2nn', 'torchvision']"),
    ({"source": "digits", "image_size": 16}, ValueError, "digits images are 8x8"),
    ({"source": "digits", "test_split": "validation"}, ValueError, "only used with source='tfds'"),
])
def test_bad_config_is_named(cfg, error, fragment):
    with pytest.raises(error) as info:
        data.validate(cfg)
    assert fragment in str(info.value)


def test_spec_defaults():
    spec = data.parse({"source": "arrays", "path": "data_cache/cifar10.npz"})
    assert (spec.name, spec.augment, spec.crop_pad, spec.flip) == ("cifar10", True, 4, True)
    assert spec.crop_style == "graph2nn"
    imagenet_spec = data.parse({"source": "tfds", "name": "imagenet2012"})
    assert imagenet_spec.test_split == "validation" and imagenet_spec.streaming
    assert not data.is_streaming({"source": "digits"})


# ---- arrays source ------------------------------------------------------------------
def _good_arrays(num_train=12, num_test=6, shape=(4, 4, 3)):
    rng = np.random.default_rng(1)
    return {"x_train": rng.integers(0, 256, (num_train,) + shape, dtype=np.uint8),
            "y_train": np.arange(num_train) % 3,
            "x_test": rng.integers(0, 256, (num_test,) + shape, dtype=np.uint8),
            "y_test": np.arange(num_test) % 3}


def _arrays_cfg(path, **extra):
    return {"source": "arrays", "path": str(path), **extra}


def test_missing_file_names_path_and_command(tmp_path):
    path = tmp_path / "nowhere" / "cifar10.npz"
    with pytest.raises(data.DataNotFoundError) as info:
        data.validate(_arrays_cfg(path))
    assert str(path) in str(info.value)
    assert "python -m relgraph_jax.data.prepare_cifar10" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("change, fragment", [
    (lambda a: a.pop("y_test"), "missing array(s) ['y_test']"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "x_train must be uint8"),
    (lambda a: a.update(x_test=a["x_test"][..., 0]), "add a channel axis"),
    (lambda a: a.update(y_train=a["y_train"][:-1]), "x_train has 12 images but y_train has 11"),
    (lambda a: a.update(y_test=a["y_test"].astype(np.float32)), "y_test must be 1-D integer"),
    (lambda a: a.update(x_test=np.zeros((6, 5, 4, 3), np.uint8)), "test images are (5, 4, 3)"),
    (lambda a: a.update(y_train=a["y_train"] - 1), "y_train holds label -1; labels must be >= 0"),
    (lambda a: a.update(classes=np.array(["a", "b"])), "label 2 is out of range for 2 classes"),
])
def test_malformed_npz_is_named(tmp_path, change, fragment):
    arrays = _good_arrays()
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError) as info:
        data.validate(_arrays_cfg(path))
    assert fragment in str(info.value)


def test_corrupt_npz_and_image_size_mismatch(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(ValueError, match="not a readable .npz"):
        data.validate(_arrays_cfg(corrupt))
    good = tmp_path / "good.npz"
    np.savez(good, **_good_arrays())
    with pytest.raises(ValueError, match="images are 4x4 but data.image_size=32"):
        data.validate(_arrays_cfg(good, image_size=32))


def test_arrays_load_round_trip(tmp_path):
    arrays = _good_arrays()
    path = tmp_path / "small.npz"
    np.savez(path, **arrays)
    ds = data.load(_arrays_cfg(path))
    np.testing.assert_array_equal(ds.x_train, arrays["x_train"])
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])
    assert ds.y_train.dtype == np.int32 and ds.num_classes == 3 and ds.name == "small"
    pixels = arrays["x_train"].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(ds.mean, pixels.mean(0), rtol=1e-6)
    np.testing.assert_allclose(ds.std, pixels.std(0), rtol=1e-5)
    assert ds.image_shape == (4, 4, 3)


def test_cifar10_name_uses_paper_constants(tmp_path):
    path = write_arrays_npz(tmp_path / "c.npz", num_train=20, num_test=10)
    ds = data.load(_arrays_cfg(path, name="cifar10"))
    np.testing.assert_allclose(ds.mean, [125.3, 123.0, 113.9], rtol=1e-6)
    np.testing.assert_allclose(ds.std, [63.0, 62.1, 66.7], rtol=1e-6)
    assert ds.num_classes == 10 and ds.x_train.shape == (20, 32, 32, 3)


# ---- bundled digits -----------------------------------------------------------------
def test_digits_split_and_pixels():
    from sklearn.datasets import load_digits
    ds = data.load({"source": "digits"})
    assert ds.x_train.shape == (1437, 8, 8, 1) and ds.x_test.shape == (360, 8, 8, 1)
    assert ds.x_train.dtype == np.uint8 and ds.num_classes == 10
    allowed = {int(round(k * 255 / 16)) for k in range(17)}
    assert set(np.unique(np.concatenate([ds.x_train.ravel(), ds.x_test.ravel()]))) <= allowed
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0
    # Train + test is exactly scikit-learn's set (as a multiset of image/label rows).
    raw = load_digits()
    ours = np.concatenate([np.c_[ds.x_train.reshape(-1, 64), ds.y_train],
                           np.c_[ds.x_test.reshape(-1, 64), ds.y_test]])
    theirs = np.c_[np.rint(raw.data * 255 / 16), raw.target].astype(np.int64)
    np.testing.assert_array_equal(np.unique(ours, axis=0, return_counts=True)[1],
                                  np.unique(theirs, axis=0, return_counts=True)[1])
    np.testing.assert_array_equal(np.unique(ours, axis=0), np.unique(theirs, axis=0))
    # Stratified: each class's share of the test set is within one image of its share overall.
    expected = 360 * np.bincount(raw.target) / raw.target.size
    assert np.all(np.abs(np.bincount(ds.y_test) - expected) <= 1)
    np.testing.assert_allclose(ds.mean, [ds.x_train.astype(np.float64).mean()], rtol=1e-6)
    np.testing.assert_array_equal(data.load({"source": "digits"}).y_test, ds.y_test)


# ---- on-device ops ------------------------------------------------------------------
def test_normalize_matches_numpy():
    images = np.random.default_rng(0).integers(0, 256, (3, 5, 5, 3), dtype=np.uint8)
    mean, std = np.array([125.3, 123.0, 113.9]), np.array([63.0, 62.1, 66.7])
    out = jax.jit(data.normalize)(images, mean, std)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, (images - mean) / std, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        data.normalize(images, mean[:1], std)


def _windows(images, pad, flip_first):
    """All crops (dy, dx in 0..2*pad) of the zero-padded images, unflipped then flipped:
    (2, 2*pad+1, 2*pad+1, N, H, W, C). flip_first: flip, then pad and crop (graph2nn);
    else pad, crop, then flip (torchvision)."""
    n, h, w, c = images.shape
    out = []
    for flipped in (False, True):
        x = images[:, :, ::-1] if flipped and flip_first else images
        padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        crops = [[padded[:, dy:dy + h, dx:dx + w] for dx in range(2 * pad + 1)]
                 for dy in range(2 * pad + 1)]
        out.append(np.asarray(crops)[..., ::-1, :] if flipped and not flip_first else crops)
    return np.asarray(out)


def _crop_choices(out, windows):
    """(flipped, dy, dx) of the one window each output image equals."""
    matches = np.all(windows == out, axis=(-3, -2, -1))  # (2, 9, 9, N)
    assert np.all(matches.sum((0, 1, 2)) == 1)
    return np.unravel_index(matches.reshape(-1, out.shape[0]).argmax(0), matches.shape[:3])


def test_graph2nn_crop_is_a_window_of_the_mean_padded_normalised_image():
    """graph2nn: normalise, flip, pad with 0 (the mean colour), offsets randint(0, 8) =
    0..7, never 8."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1024, 8, 8, 3), dtype=np.uint8)
    mean, std = np.array([125.3, 123.0, 113.9]), np.array([63.0, 62.1, 66.7])
    out = np.asarray(jax.jit(data.train_images)(images, jax.random.key(3), mean, std))
    normalised = np.asarray(jax.jit(data.normalize)(images, mean, std))
    assert out.shape == images.shape and out.dtype == np.float32
    flipped, dy, dx = _crop_choices(out, _windows(normalised, 4, flip_first=True))
    assert 0.45 < flipped.mean() < 0.55
    assert set(dy) == set(range(8)) and set(dx) == set(range(8))
    # The border is exactly the mean colour: 0 after normalisation (none is black).
    top_rows = out[dy == 0][:, :4]
    assert np.all(top_rows == 0.0)


@pytest.mark.parametrize("style", data.CROP_STYLES)
def test_trainer_batches_are_cropped_in_the_configured_style(style):
    """The resident data stay uint8; each step's batch is cut, augmented and normalised on
    the device as `style` does it."""
    from relgraph_jax.train import programs as programs_lib
    rng = np.random.default_rng(1)
    x_all = rng.integers(1, 256, (256, 8, 8, 3), dtype=np.uint8)
    mean, std = np.full(3, 127.5, np.float32), np.full(3, 60.0, np.float32)
    spec = data.parse({"source": "digits", "crop_style": style})
    batches = programs_lib.BatchConfig(batch_size=128, eval_batch_size=128, mean=tuple(mean),
                                       std=tuple(std), data_spec=spec)
    perms = np.stack([np.arange(256), np.arange(256)[::-1]]).astype(np.int32)
    seeds = np.array([0, 1], np.int32)
    images, labels = jax.jit(lambda *args: programs_lib._resident_batches(
        batches, *args, steps_per_epoch=2))(x_all, np.arange(256), perms, seeds, 3)
    fill = 0.0 if style == "graph2nn" else -mean / std  # the mean colour, or black
    flip_first = style == "graph2nn"
    border = _windows(np.ones((128, 8, 8, 3)), 4, flip_first) == 0
    for s, order in enumerate(perms):
        batch = order[128:]  # step 3 is the second batch of its epoch
        np.testing.assert_array_equal(labels[s], batch)
        normalised = np.asarray(data.normalize(x_all[batch], mean, std))
        windows = np.where(border, fill, _windows(normalised, 4, flip_first))
        _, dy, dx = _crop_choices(np.asarray(images[s]), windows)
        assert max(dy.max(), dx.max()) == (7 if style == "graph2nn" else 8)


def test_torchvision_crop_is_a_window_of_the_black_padded_image():
    """The old behaviour: pad the uint8 image with black, offsets 0..8, flip after."""
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (1024, 8, 8, 3), dtype=np.uint8)  # no zero: windows unique
    out = np.asarray(jax.jit(data.augment_batch, static_argnames="style")(
        images, jax.random.key(3), style="torchvision"))
    assert out.shape == images.shape and out.dtype == np.uint8
    flipped, dy, dx = _crop_choices(out, _windows(images, 4, flip_first=False))
    assert 0.4 < flipped.mean() < 0.6
    assert set(dy) == set(range(9)) and set(dx) == set(range(9))
    mean, std = np.full(3, 100.0), np.full(3, 50.0)
    np.testing.assert_array_equal(
        data.train_images(images, jax.random.key(3), mean, std, style="torchvision"),
        data.normalize(out, mean, std))


def test_augment_under_vmap_and_identity():
    images = np.random.default_rng(1).normal(size=(4, 6, 6, 1)).astype(np.float32)
    keys = jax.random.split(jax.random.key(0), 3)
    augment = jax.jit(data.augment_batch, static_argnames=("crop_pad", "flip"))
    stacked = jax.jit(jax.vmap(data.augment_batch, in_axes=(None, 0)))(images, keys)
    for i in range(3):
        np.testing.assert_array_equal(stacked[i], augment(images, keys[i]))
    assert not np.array_equal(stacked[0], stacked[1])
    np.testing.assert_array_equal(
        augment(images, jax.random.PRNGKey(0), crop_pad=0, flip=False), images)
    with pytest.raises(TypeError, match="style='graph2nn' expects normalised floating images"):
        data.augment_batch(images.astype(np.uint8), keys[0])
    with pytest.raises(TypeError, match="style='torchvision' expects uint8 images"):
        data.augment_batch(images, keys[0], style="torchvision")


def test_epoch_order_is_a_deterministic_permutation():
    order_of = jax.jit(data.epoch_order, static_argnums=2)
    order = np.asarray(order_of(0, 0, 100))
    np.testing.assert_array_equal(np.sort(order), np.arange(100))
    np.testing.assert_array_equal(order, order_of(jnp.int32(0), 0, 100))
    assert not np.array_equal(order, order_of(0, 1, 100))
    assert not np.array_equal(order, order_of(1, 0, 100))
    by_seed = jax.jit(jax.vmap(data.epoch_order, in_axes=(0, None, None)),
                      static_argnums=2)(jnp.arange(3), 0, 100)
    np.testing.assert_array_equal(by_seed[0], order)
    mesh = jax.make_mesh((8,), ("d",))
    sharded = jax.jit(data.epoch_order, static_argnums=2,
                      out_shardings=jax.NamedSharding(mesh, jax.P("d")))(5, 2, 64)
    np.testing.assert_array_equal(sharded, order_of(5, 2, 64))
    with pytest.raises(ValueError, match="n >= 1"):
        data.epoch_order(0, 0, 0)


# ---- tfds under mock data -----------------------------------------------------------
def test_tfds_sources_under_mock():
    with mock_tfds(num_examples=6):
        cifar = data.load({"source": "tfds", "name": "cifar10"})
        mnist = data.load({"source": "tfds", "name": "mnist"})
    assert cifar.x_train.shape == (6, 32, 32, 3) and cifar.x_test.dtype == np.uint8
    np.testing.assert_allclose(cifar.mean, [125.3, 123.0, 113.9], rtol=1e-6)
    assert mnist.x_train.shape == (6, 28, 28, 1) and mnist.num_classes == 10
    assert mnist.y_train.dtype == np.int32 and 0 <= mnist.y_train.min() <= mnist.y_train.max() < 10
    np.testing.assert_allclose(mnist.mean, [mnist.x_train.astype(np.float64).mean()], rtol=1e-6)
    with pytest.raises(ValueError, match="use relgraph_jax.data.open_stream"):
        data.load({"source": "tfds", "name": "imagenet2012"})


def test_tfds_not_prepared_says_how(tmp_path):
    with pytest.raises(data.DataNotFoundError) as info:
        data.validate({"source": "tfds", "name": "mnist", "tfds_data_dir": str(tmp_path)})
    message = str(info.value)
    assert f"nothing is prepared at {tmp_path}" in message
    assert "tfds build mnist --file_format=array_record" in message


# ---- ImageNet transforms and stream -------------------------------------------------
def test_crop_box_respects_area_and_aspect():
    rng = np.random.default_rng(0)
    boxes = np.array([imagenet.crop_box(40, 60, rng) for _ in range(2000)])
    top, left, h, w = boxes.T
    assert np.all((top >= 0) & (left >= 0) & (top + h <= 40) & (left + w <= 60))
    area = h * w / (40 * 60)
    square = (h == w) & (h == 40) & (left == 10)  # the fallback when no try fits
    assert np.all((area[~square] > 0.07) & (area[~square] <= 1.0))
    aspect = w / h
    assert np.all((aspect > 0.7) & (aspect < 1.43))
    assert area.min() < 0.12 and area.max() > 0.6  # the whole range is used


def test_lighting_constants_and_offset():
    np.testing.assert_allclose(imagenet.EIGVECS.T @ imagenet.EIGVECS, np.eye(3), atol=2e-3)
    np.testing.assert_allclose(imagenet.lighting_offset([1.0, 0.0, 0.0]),
                               0.2175 * 255 * imagenet.EIGVECS[:, 0], rtol=1e-6)
    constant = np.full((30, 20, 3), 100, np.uint8)
    out = imagenet_train_image(constant, 8, np.random.default_rng(0))
    assert out.shape == (8, 8, 3) and out.dtype == np.float32
    shift = out - 100.0  # crop, resize and flip keep a constant image constant
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0, 0], shift.shape), atol=1e-4)
    assert 0 < np.abs(shift[0, 0]).max() < 30


def test_eval_transform_centre_crop():
    image = np.random.default_rng(0).integers(0, 256, (9, 14, 3), dtype=np.uint8)
    # size 8 -> shorter side round(8 * 256 / 224) = 9: no resize, crop rows 0:8, cols 3:11.
    np.testing.assert_array_equal(imagenet.eval_transform(image, 8), image[0:8, 3:11])
    tall = np.full((50, 20, 3), 7, np.uint8)
    out = imagenet.eval_transform(tall, 8)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8 and np.all(out == 7)


def test_transforms_equal_the_array_formulation_for_arrays_and_pillow_images():
    """Crop, resize and flip done in Pillow give the pixels of the array formulation
    (torchvision's order: crop the array, resize the crop, flip the result)."""
    image = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    flips = set()
    for seed in range(24):
        rng = np.random.default_rng(seed)
        top, left, h, w = imagenet.crop_box(37, 53, rng)
        want = np.asarray(Image.fromarray(image[top:top + h, left:left + w])
                          .resize((16, 16), Image.BILINEAR))
        flips.add(flip := rng.uniform() < 0.5)
        want = want[:, ::-1] if flip else want
        offset = imagenet.lighting_offset(rng.normal(0.0, imagenet.LIGHTING_STD, 3))
        for source in (image, Image.fromarray(image)):
            crop, lighting = imagenet.train_crop(source, 16, np.random.default_rng(seed))
            np.testing.assert_array_equal(crop, want)
            np.testing.assert_array_equal(lighting, offset)
    assert flips == {True, False}
    # Eval: shorter side 37 -> round(16 * 256 / 224) = 18, longer 53 * 18 / 37 -> 26.
    resized = np.asarray(Image.fromarray(image).resize((26, 18), Image.BILINEAR))
    for source in (image, Image.fromarray(image), Image.fromarray(image).convert("RGBA")):
        np.testing.assert_array_equal(imagenet.eval_transform(source, 16), resized[1:17, 5:21])


@pytest.fixture(scope="module")
def imagenet_stream():
    """The mocked tfds imagenet2012 (10 random examples per split) as a stream, decoded in
    this process (workers=0), and the raw examples to check it against."""
    import tensorflow_datasets as tfds
    with mock_tfds(num_examples=10):
        spec = {"source": "tfds", "name": "imagenet2012", "image_size": 16, "workers": 0}
        source = tfds.data_source("imagenet2012", split="train", download=False)
        yield data.open_stream(spec), [source[i] for i in range(10)]


def test_imagenet_train_batches_are_the_transformed_examples_of_each_seeds_order(imagenet_stream):
    stream, examples = imagenet_stream
    assert (stream.num_train, stream.num_classes, stream.image_shape) == (10, 1000, (16, 16, 3))
    assert stream.classes[:2] == ("n01440764", "n01443537")  # tfds's label names
    seeds = (0, 7)
    batches = list(stream.train_batches(4, seeds, epoch=1))
    assert len(batches) == 2 == stream.steps_per_epoch(4)
    for b, batch in enumerate(batches):
        assert batch.images.shape == (2, 4, 16, 16, 3) and batch.images.dtype == np.uint8
        assert batch.lighting.shape == (2, 4, 3) and batch.lighting.dtype == np.float32
        assert batch.labels.shape == (2, 4) and batch.labels.dtype == np.int32
        # The train images: the uint8 crops plus their lighting (summed on the device).
        images = batch.images.astype(np.float32) + batch.lighting[:, :, None, None, :]
        for s, seed in enumerate(seeds):
            order = np.asarray(data.epoch_order(seed, 1, 10))
            for row, index in enumerate(order[b * 4:(b + 1) * 4]):
                want = imagenet_train_image(np.asarray(examples[index]["image"]), 16,
                                            np.random.default_rng([seed, 1, index]))
                np.testing.assert_array_equal(images[s, row], want)
                assert batch.labels[s, row] == examples[index]["label"]
    # A resume at batch 1 makes batch 1 again; each of 2 processes makes its half of the rows.
    resumed = next(iter(stream.train_batches(4, seeds, 1, first_batch=1)))
    np.testing.assert_array_equal(resumed.images, batches[1].images)
    np.testing.assert_array_equal(resumed.lighting, batches[1].lighting)
    halves = [next(iter(stream.train_batches(4, seeds, 1, process_index=p, process_count=2)))
              for p in range(2)]
    np.testing.assert_array_equal(np.concatenate([h.images for h in halves], 1),
                                  batches[0].images)
    with pytest.raises(ValueError, match="batch size 4 must be divisible by the 3 processes"):
        next(iter(stream.train_batches(4, seeds, 1, process_index=0, process_count=3)))


def test_imagenet_test_batches_pad_the_last(imagenet_stream):
    stream, examples = imagenet_stream  # mocked train and test splits hold the same examples
    batches = list(stream.test_batches(4))
    assert [b.valid.tolist() for b in batches] == [[True] * 4, [True] * 4, [True] * 2 + [False] * 2]
    for i, example in enumerate(examples):
        batch = batches[i // 4]
        np.testing.assert_array_equal(batch.images[i % 4],
                                      imagenet.eval_transform(np.asarray(example["image"]), 16))
        assert batch.labels[i % 4] == example["label"]
    last = batches[-1]
    assert last.images.dtype == np.uint8 and last.images.shape == (4, 16, 16, 3)
    assert np.all(last.images[2:] == 0) and np.all(last.labels[2:] == 0)
    second = list(stream.test_batches(4, process_index=1, process_count=2))
    np.testing.assert_array_equal(second[-1].images, last.images[2:])
    assert second[-1].valid.tolist() == [False, False]


# ---- shared CIFAR-10 JPEG copy --------------------------------------------------------
def _fake_jpeg_npz(path, counts=(6, 4)):
    """A tiny file in the shared copy's format, with smooth images (little JPEG loss)."""
    yy, xx = np.mgrid[0:32, 0:32]
    originals, arrays = {}, {"classes": np.array(["cat", "dog", "ship"])}
    for split, n in zip(("train", "test"), counts):
        images = np.stack([np.stack([(yy * 4 + 10 * i) % 256, xx * 6, np.full_like(xx, 40 * i)],
                                    -1).astype(np.uint8) for i in range(n)])
        blobs = []
        for image in images:
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="JPEG", quality=95)
            blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
        arrays[f"{split}_jpeg"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [b.size for b in blobs]).astype(np.int64)
        arrays[f"{split}_labels"] = np.arange(n, dtype=np.int64) % 3
        originals[split] = images
    np.savez(path, **arrays)
    return arrays, originals


def test_prepare_cifar10_decodes_to_arrays(tmp_path, capsys):
    src, out = tmp_path / "jpeg.npz", tmp_path / "cache" / "cifar10.npz"
    arrays, originals = _fake_jpeg_npz(src)
    assert prepare_cifar10.main(["--src", str(src), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    ds = data.load({"source": "arrays", "path": str(out)})
    assert ds.x_train.shape == (6, 32, 32, 3) and ds.x_test.shape == (4, 32, 32, 3)
    assert ds.num_classes == 3 and ds.name == "cifar10"
    np.testing.assert_array_equal(ds.y_train, arrays["train_labels"])
    for split, x in (("train", ds.x_train), ("test", ds.x_test)):
        error = np.abs(x.astype(np.int16) - originals[split].astype(np.int16))
        assert error.mean() < 2.0


def test_prepare_cifar10_rejects_bad_sources(tmp_path, capsys):
    assert prepare_cifar10.main(["--src", str(tmp_path / "none.npz"),
                                 "--out", str(tmp_path / "o.npz")]) == 1
    assert "not found" in capsys.readouterr().err
    arrays, _ = _fake_jpeg_npz(tmp_path / "jpeg.npz")
    with pytest.raises(ValueError, match="must rise strictly"):
        prepare_cifar10.decode_split(arrays["test_jpeg"], arrays["test_offsets"][::-1], "test")
    broken = arrays["train_jpeg"].copy()
    broken[: arrays["train_offsets"][1]] = 0
    with pytest.raises(ValueError, match="train image 0 is not a readable JPEG"):
        prepare_cifar10.decode_split(broken, arrays["train_offsets"], "train")
    del arrays["test_labels"]
    np.savez(tmp_path / "partial.npz", **arrays)
    with pytest.raises(ValueError, match=r"missing \['test_labels'\]"):
        prepare_cifar10.decode(tmp_path / "partial.npz")
    assert not (tmp_path / "o.npz").exists()


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    from relgraph_jax.data import imagefolder
    levels = np.arange(256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(levels * 257).save(tmp_path / "deep.png")  # 0, 257, ..., 65535
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    pixels = np.asarray(imagefolder.read_image(str(tmp_path / "deep.png")))
    assert pixels.shape == (16, 16, 3)
    for channel in range(3):
        np.testing.assert_array_equal(pixels[..., channel], levels)


def test_the_same_split_for_training_and_testing_is_refused():
    with pytest.raises(ValueError, match="data.train_split and data.test_split are both 'train'"):
        data.parse({"source": "tfds", "name": "mnist", "test_split": "train"})
