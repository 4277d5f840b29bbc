"""The model family: exact sizes, equivalence with keras.applications, dense form, pre-init."""

import numpy as np
import pytest
import keras

import vgg_keras
from vgg_keras.configs import CONFIGS, GFLOPS_224, IMAGENET_MEAN_RGB, parse_layer

PAPER_PARAMS = {
    "A": 132_863_336,
    "A-LRN": 132_863_336,
    "B": 133_047_848,
    "C": 133_638_952,
    "D": 138_357_544,
    "E": 143_667_240,
}


def tiny(arch="A", classes=7, size=64, **kwargs):
    kwargs.setdefault("init", "glorot")
    return vgg_keras.build_vgg(arch, classes, input_shape=(size, size, 3), width=0.25, **kwargs)


def images(n, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, *size, 3)).astype("float32")


@pytest.mark.parametrize("arch", list(PAPER_PARAMS))
def test_parameter_counts_match_the_paper_exactly(arch):
    bare = vgg_keras.build_vgg(arch, preprocessing=None)
    assert bare.count_params() == PAPER_PARAMS[arch]
    default = vgg_keras.build_vgg(arch)
    trainable = sum(int(np.prod(w.shape)) for w in default.trainable_weights)
    assert trainable == PAPER_PARAMS[arch]
    assert default.count_params() == PAPER_PARAMS[arch] + 3  # the mean RGB constants


@pytest.mark.parametrize("arch", list(CONFIGS))
def test_table_reproduces_the_forward_flops(arch):
    """The configuration table, read as a network at 224, costs what the paper sheet says."""
    macs, size, channels = 0, 224, 3
    for block in CONFIGS[arch]:
        for spec in block:
            parsed = parse_layer(spec)
            if parsed:
                kernel, out = parsed
                macs += size * size * kernel * kernel * channels * out
                channels = out
        size //= 2
    macs += 7 * 7 * 512 * 4096 + 4096 * 4096 + 4096 * 1000
    assert 2 * macs / 1e9 == pytest.approx(GFLOPS_224[arch], abs=0.01)


def test_layer_names_follow_caffe():
    names = [layer.name for layer in vgg_keras.build_vgg("a-lrn", 5, input_shape=(32, 32, 3),
                                                         width=0.125).layers]
    assert names == [
        "image", "normalization", "block1_conv1", "lrn", "block1_pool", "block2_conv1",
        "block2_pool", "block3_conv1", "block3_conv2", "block3_pool", "block4_conv1",
        "block4_conv2", "block4_pool", "block5_conv1", "block5_conv2", "block5_pool",
        "flatten", "fc6", "drop6", "fc7", "drop7", "fc8",
    ]
    c = vgg_keras.build_vgg("C", 5, input_shape=(32, 32, 3), width=0.125)
    assert c.get_layer("block3_conv3").kernel.shape == (1, 1, 32, 32)


def test_width_scales_every_channel_count_and_small_crops_keep_the_architecture():
    model = tiny("D", classes=3, size=64)
    assert model.get_layer("block1_conv1").filters == 16
    assert model.get_layer("block5_conv3").filters == 128
    assert model.get_layer("fc6").units == 1024
    assert model.get_layer("fc6").kernel.shape == (2 * 2 * 128, 1024)  # the whole 2x2 pool5 map
    assert model.output_shape == (None, 3)


def conv_kernels(model):
    return [tuple(layer.kernel.shape) for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D)]


@pytest.mark.parametrize("width", [0.125, 0.3])
@pytest.mark.parametrize("arch", ["A", "A-LRN", "B", "B-5x5", "C", "D", "E"])
def test_identify_vgg_names_the_configuration_and_width_of_a_conv_stack(arch, width):
    kernels = conv_kernels(vgg_keras.build_vgg(arch, include_top=False, input_shape=(32, 32, 3),
                                               width=width))
    found, found_width = vgg_keras.models.identify_vgg(kernels, lrn=arch == "A-LRN")
    assert found == arch
    # 0.3 rounds 512 channels to 154, which 154 / 512 = 0.30078 builds as well.
    assert found_width == pytest.approx(width, abs=0.001)
    rebuilt = vgg_keras.build_vgg(found, include_top=False, input_shape=(32, 32, 3),
                                  width=found_width)
    assert conv_kernels(rebuilt) == kernels


def test_identify_vgg_refuses_stacks_of_no_configuration():
    with pytest.raises(ValueError, match=r"3 conv layers with kernels \['3x3', '3x3', '7x7'\] "
                                         r"match no VGG configuration \(A, A-LRN, B, C, D, E"):
        vgg_keras.models.identify_vgg([(3, 3, 3, 64), (3, 3, 64, 64), (7, 7, 64, 64)])
    a_kernels = conv_kernels(tiny("A"))
    with pytest.raises(ValueError, match="and an LRN layer match no VGG configuration"):
        vgg_keras.models.identify_vgg(a_kernels[:-1], lrn=True)
    # D's kernel sizes, but block5 narrower than block4: no single width builds that.
    d_kernels = conv_kernels(tiny("D"))
    narrow = d_kernels[:-3] + [(3, 3, 64, 64)] * 3
    with pytest.raises(ValueError, match=r"configuration D's output channels \[16, 16, 32, 32, "
                                         r"64, 64, 64, 128, 128, 128, 64, 64, 64\] are not the "
                                         r"paper's"):
        vgg_keras.models.identify_vgg(narrow)


def test_include_top_false_returns_pool5_for_any_size():
    backbone = vgg_keras.build_vgg("B", include_top=False, input_shape=(None, None, 3), width=0.125)
    assert backbone.layers[-1].name == "block5_pool"
    assert backbone(np.zeros((1, 96, 160, 3), "float32")).shape == (1, 3, 5, 64)


def test_init_paper_is_normal_with_std_0_01_and_zero_bias():
    model = vgg_keras.build_vgg("A", input_shape=(32, 32, 3), width=0.5)
    kernel = keras.ops.convert_to_numpy(model.get_layer("block4_conv1").kernel)
    assert abs(kernel.mean()) < 5e-4
    assert kernel.std() == pytest.approx(0.01, rel=0.02)
    assert not np.any(keras.ops.convert_to_numpy(model.get_layer("fc6").bias))
    glorot = vgg_keras.build_vgg("A", input_shape=(32, 32, 3), width=0.5, init="glorot")
    k = keras.ops.convert_to_numpy(glorot.get_layer("block4_conv1").kernel)
    limit = np.sqrt(6 / (9 * 128 + 9 * 256))
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"arch": "F"}, "A, A-LRN, B, C, D, E"),
        ({"arch": "A", "width": 0}, "width"),
        ({"arch": "A", "width": -1}, "width"),
        ({"arch": "A", "input_shape": (31, 64, 3)}, "at least 32x32"),
        ({"arch": "A", "input_shape": (None, None, 3)}, "include_top"),
        ({"arch": "A", "init": "he"}, "init"),
        ({"arch": "A", "preprocessing": "caffe"}, "preprocessing"),
        ({"arch": "A", "dropout": 1.0}, "dropout"),
    ],
)
def test_bad_arguments_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        vgg_keras.build_vgg(**kwargs)


def test_weights_path_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such weights file.*or a released name"):
        vgg_keras.build_vgg("D", weights=tmp_path / "vgg16.h5")


def test_default_model_equals_bare_model_on_mean_subtracted_input():
    model = tiny("B")
    bare = tiny("B", preprocessing=None)
    bare.set_weights(model.get_weights()[1:])  # skip the mean constants
    x = images(2, (64, 64))
    expected = bare(x - np.array(IMAGENET_MEAN_RGB, "float32"))
    np.testing.assert_allclose(model(x), expected, atol=1e-5)


@pytest.mark.parametrize("arch, application", [("D", "VGG16"), ("E", "VGG19")])
def test_same_predictions_as_keras_applications(arch, application):
    reference = getattr(keras.applications, application)(weights=None, classifier_activation=None)
    ours = vgg_keras.build_vgg(arch, preprocessing=None)
    assert ours.count_params() == reference.count_params()
    ours_weighted = [layer for layer in ours.layers if layer.weights]
    theirs_weighted = [layer for layer in reference.layers if layer.weights]
    assert len(ours_weighted) == len(theirs_weighted)
    rng = np.random.default_rng(1)
    for mine, theirs in zip(ours_weighted, theirs_weighted):
        mine.set_weights(theirs.get_weights())
    x = rng.uniform(-120, 120, (2, 224, 224, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(reference(x))
    got = keras.ops.convert_to_numpy(ours(x))
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_dense_equals_fc_at_224_and_score_maps_grow_with_q():
    model = vgg_keras.build_vgg("A", 11, width=0.25, init="glorot")
    dense = vgg_keras.to_dense(model)
    x = images(2, (224, 224))
    logits = keras.ops.convert_to_numpy(model(x))
    score_map = keras.ops.convert_to_numpy(dense(x))
    assert score_map.shape == (2, 1, 1, 11)
    assert np.abs(logits).max() > 1e-3
    assert np.abs(score_map[:, 0, 0] - logits).max() < 1e-4
    assert dense(images(1, (256, 256))).shape == (1, 2, 2, 11)
    assert dense(images(1, (384, 384))).shape == (1, 6, 6, 11)
    assert dense(images(1, (224, 320))).shape == (1, 1, 4, 11)


def test_dense_shares_weight_values_and_rejects_small_images():
    model = tiny("A-LRN")
    dense = vgg_keras.to_dense(model)
    fc6 = keras.ops.convert_to_numpy(model.get_layer("fc6").kernel)
    conv6 = keras.ops.convert_to_numpy(dense.get_layer("fc6").kernel)
    assert conv6.shape == (2, 2, 128, 1024)
    np.testing.assert_array_equal(conv6.reshape(fc6.shape), fc6)
    x = images(3, (64, 64))
    np.testing.assert_allclose(dense(x)[:, 0, 0], model(x), atol=1e-5)
    with pytest.raises(ValueError, match="at least 64x64"):
        dense(images(1, (48, 96)))


def test_preinitialize_copies_first_four_convs_and_the_fcs():
    source = tiny("A")
    target = tiny("D")
    before = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in target.layers}
    copied = vgg_keras.preinitialize(target, source)
    assert copied == [
        "block1_conv1", "block2_conv1", "block3_conv1", "block3_conv2", "fc6", "fc7", "fc8",
    ]
    for layer in target.layers:
        now = layer.get_weights()
        if layer.name in copied:
            for w, s in zip(now, source.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(w, s)
        else:
            for w, b in zip(now, before[layer.name]):
                np.testing.assert_array_equal(w, b)


def test_preinitialize_names_the_layer_that_does_not_fit():
    source = tiny("A", classes=7)
    with pytest.raises(ValueError, match="'fc8'"):
        vgg_keras.preinitialize(tiny("E", classes=9), source)
    with pytest.raises(ValueError, match="'block1_conv1'"):
        vgg_keras.preinitialize(
            vgg_keras.build_vgg("B", 7, input_shape=(64, 64, 3), width=0.5), source)


def test_unit_scale_gives_every_random_layer_unit_output_and_keeps_copied_ones():
    model, source = tiny("D", size=32), tiny("A", size=32)
    copied = vgg_keras.preinitialize(model, source)
    kept = {name: model.get_layer(name).get_weights() for name in copied}
    batch = images(12, (32, 32))
    factors = vgg_keras.scale_to_unit_output(model, batch, skip=copied, batch_size=5)
    weighted = [layer.name for layer in model.layers
                if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    assert list(factors) == [name for name in weighted if name not in copied]
    # Glorot's start shrinks the signal layer by layer; the factors undo it.
    assert min(factors.values()) < 0.5
    for name in weighted:
        output = keras.Model(model.input, model.get_layer(name).output)(batch)
        rms = float(np.sqrt(np.mean(np.square(np.asarray(output)))))
        if name in copied:
            for now, before in zip(model.get_layer(name).get_weights(), kept[name]):
                np.testing.assert_array_equal(now, before)
        else:
            assert rms == pytest.approx(1.0, abs=1e-4), name


# -- the localisation head ---------------------------------------------------------------------


@pytest.mark.parametrize("regression,classes,outputs", [("pcr", 7, 28), ("scr", None, 4)])
def test_box_head_records_its_regression_and_classes(regression, classes, outputs):
    from vgg_keras.heads import BOX_LAYER, PRIOR_BOX, BoxRegression, is_localizer, regression_of

    classifier = tiny("A", classes=7)
    for loc in (vgg_keras.build_localizer(classifier, regression=regression),
                vgg_keras.build_localizer("A", classes, regression=regression,
                                          input_shape=(64, 64, 3), width=0.125)):
        head = loc.get_layer(BOX_LAYER)
        assert isinstance(head, BoxRegression) and head.units == outputs
        assert head.get_config()["regression"] == regression
        assert regression_of(loc) == (regression, classes) and is_localizer(loc)
        np.testing.assert_array_equal(head.get_weights()[1], np.tile(PRIOR_BOX, outputs // 4))
        clone = keras.models.clone_model(loc)   # from_config keeps the class and the head
        assert regression_of(clone) == (regression, classes)
        assert vgg_keras.to_dense(loc).get_layer(BOX_LAYER).filters == outputs
    assert loc.get_layer(BOX_LAYER).num_classes == classes
    assert vgg_keras.build_localizer(classifier, regression="scr").get_layer(
        BOX_LAYER).num_classes == 7   # SCR from a classifier still knows its classes
    assert not is_localizer(classifier)
    with pytest.raises(ValueError, match="needs num_classes"):
        BoxRegression("pcr")
    with pytest.raises(ValueError, match="not units=12"):
        BoxRegression("pcr", 2, units=12)
    with pytest.raises(ValueError, match="regression must be one of"):
        BoxRegression("xyz", 2)


def test_seeded_localizers_draw_the_same_weights_as_classifiers():
    """The box head is built after fc7, so seeded initialisers draw in layer order: a
    localizer from scratch has the weights of the classifier of the same seed up to fc7."""
    keras.utils.set_random_seed(3)
    classifier = vgg_keras.build_vgg("A", 5, input_shape=(64, 64, 3), width=0.125)
    keras.utils.set_random_seed(3)
    loc = vgg_keras.build_localizer("A", 5, input_shape=(64, 64, 3), width=0.125)
    for name in ("block1_conv1", "fc7"):
        for a, b in zip(classifier.get_layer(name).get_weights(), loc.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name, arch", [("vgg11", "A"), ("vgg11_lrn", "A-LRN"), ("vgg13", "B"),
                                        ("vgg16_1x1", "C"), ("vgg16", "D"), ("vgg19", "E")])
def test_familiar_names_build_the_paper_configurations(name, arch):
    model = getattr(vgg_keras, name)(num_classes=7, input_shape=(32, 32, 3), width=0.125)
    reference = vgg_keras.build_vgg(arch, 7, input_shape=(32, 32, 3), width=0.125)
    assert model.name == name and vgg_keras.arch_of(model) == arch
    assert model.count_params() == reference.count_params()
    assert [layer.name for layer in model.layers] == [layer.name for layer in reference.layers]


def test_the_shallow_5x5_net_replaces_each_pair_of_3x3_convolutions_of_b():
    """Section 4.1's comparison net: B's receptive fields with one 5x5 layer per block."""
    net = vgg_keras.build_vgg("b-5x5", preprocessing=None)
    convs = [(l.name, l.kernel.shape) for l in net.layers if l.name.startswith("block")
             and "_conv" in l.name]
    channels = [3, 64, 128, 256, 512, 512]
    assert convs == [(f"block{i + 1}_conv1", (5, 5, channels[i], channels[i + 1]))
                     for i in range(5)]
    conv_params = sum(25 * a * b + b for a, b in zip(channels, channels[1:]))
    fc_params = 7 * 7 * 512 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    assert net.count_params() == conv_params + fc_params == 134_503_528
    # Same receptive field as B's two 3x3 layers, more weights (25 C^2 against 2 x 9 C^2) and one
    # non-linearity instead of two: the paper's argument for stacks of small filters.
    assert net.count_params() > PAPER_PARAMS["B"]
    assert vgg_keras.arch_of(net) == "B-5x5"
