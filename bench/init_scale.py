"""Why deep plain VGG stays at chance: the signal and gradient scales of each initialisation at
step 0, side by side in one run.

For each configuration and initialisation, the same batch of embedded images goes through the
freshly initialised network; the table gives the standard deviation of each block's output
(after its pool), of fc7 and of the logits, and the relative gradient ``|dL/dW| / |W|`` of the
first conv layer, of the last conv layer and of fc8 under the cross-entropy loss. A network
whose logits have a standard deviation of 1e-4 outputs the same posterior for every image, and
the gradients that reach its first layers are what decide whether SGD moves them at all.

Initialisations (conv and FC kernels; biases zero):
- ``paper``: N(0, 0.01), the paper's (it pre-initialised its deeper nets from A);
- ``glorot``: Keras's Glorot uniform, variance 2 / (fan_in + fan_out);
- ``xavier``: Caffe's "xavier" filler, which the authors' Caffe code used when they trained
  without pre-initialisation: uniform with variance 1 / fan_in;
- ``he``: variance 2 / fan_in (He et al. 2015), which keeps a ReLU net's signal constant.

    python bench/init_scale.py [--archs A D E] [--width 0.25] [--crop 64] [--batch 64]
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from vgg_keras import build_vgg
from vgg_keras.data import eval_pipeline, load

INITIALIZERS = {
    "paper": lambda: keras.initializers.RandomNormal(stddev=0.01),
    "glorot": lambda: keras.initializers.GlorotUniform(),
    "xavier": lambda: keras.initializers.VarianceScaling(1.0, "fan_in", "uniform"),
    "he": lambda: keras.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal"),
}


def initialised(arch, init, *, width, crop, classes, seed):
    keras.utils.set_random_seed(seed)
    model = build_vgg(arch, classes, input_shape=(crop, crop, 3), width=width, dropout=0.0)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = INITIALIZERS[init]()(layer.kernel.shape)
            layer.kernel.assign(kernel)
    return model


def measure(model, images, labels):
    names = [l.name for l in model.layers if l.name.endswith("_pool")] + ["fc7", "fc8"]
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    outputs = probe(images)
    stds = {n: float(np.std(o)) for n, o in zip(names, outputs)}
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    watched = {"conv1": convs[0], "conv_last": convs[-1], "fc8": model.get_layer("fc8")}
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        loss = tf.reduce_mean(loss)
    grads = tape.gradient(loss, [w.kernel for w in watched.values()])
    relative = {name: float(tf.norm(g) / tf.norm(layer.kernel))
                for (name, layer), g in zip(watched.items(), grads)}
    return stds, relative, float(loss)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["A", "D", "E"])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--data", default="vgg_shapes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    examples = load(args.data, "train")
    batch = next(iter(eval_pipeline(examples, scale=args.crop + args.crop // 8, mode="center",
                                    crop=args.crop, batch_size=args.batch)))
    images, labels = batch[0], batch[1]
    classes = int(np.max(labels)) + 1
    classes = max(classes, 10)
    started = time.time()
    print(f"{args.batch} images of {args.data}, width {args.width}, crop {args.crop}; "
          f"std of each output, relative gradient |dL/dW|/|W|, loss (chance: "
          f"{np.log(classes):.3f})\n")
    header = ("| arch | init | pool1 | pool3 | pool5 | fc7 | logits | grad conv1 | "
              "grad last conv | grad fc8 | loss |")
    print(header)
    print("|---|---|" + "---:|" * 9)
    for arch in args.archs:
        for init in INITIALIZERS:
            model = initialised(arch, init, width=args.width, crop=args.crop, classes=classes,
                                seed=args.seed)
            stds, relative, loss = measure(model, images, labels)
            print(f"| {arch} | {init} | {stds['block1_pool']:.3g} | {stds['block3_pool']:.3g} | "
                  f"{stds['block5_pool']:.3g} | {stds['fc7']:.3g} | {stds['fc8']:.3g} | "
                  f"{relative['conv1']:.3g} | {relative['conv_last']:.3g} | "
                  f"{relative['fc8']:.3g} | {loss:.3f} |", flush=True)
    print(f"\n{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
