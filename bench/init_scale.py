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
    python bench/init_scale.py --archs D --steps 200 --lrs 1e-2 1e-3   # then what SGD does
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from vgg_keras import build_vgg
from vgg_keras.data import eval_pipeline, load, train_pipeline

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


def sgd_trace(model, batches, lr, *, every, weight_decay=5e-4):
    """Loss, logits' std and dead fc7 share (``loss/std/dead%``) every ``every`` SGD steps."""
    optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    kernels = [w for w in model.trainable_weights if len(w.shape) > 1]
    probe = keras.Model(model.input, [model.get_layer("fc7").output, model.output])
    trace = []
    for step, (images, labels) in enumerate(batches + [batches[-1]]):
        if step % every == 0:
            fc7, logits = probe(images)
            loss = float(tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True)))
            dead = float(np.mean(np.all(np.asarray(fc7) <= 0, axis=0)))
            trace.append(f"{loss:.2f}/{float(np.std(logits)):.2g}/{100 * dead:.0f}%")
        if step == len(batches):
            break
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True))
        grads = tape.gradient(loss, model.trainable_weights)
        # Caffe's weight decay: decay * w added to the gradient of every kernel.
        grads = [g + weight_decay * w if any(w is k for k in kernels) else g
                 for g, w in zip(grads, model.trainable_weights)]
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
    return trace


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["A", "D", "E"])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--data", default="vgg_shapes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=0, help="also train this many SGD steps")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-2, 1e-3])
    parser.add_argument("--step-inits", nargs="+", default=["glorot", "xavier"])
    args = parser.parse_args()

    examples = load(args.data, "train")
    batch = next(iter(eval_pipeline(examples, test_scale=args.crop + args.crop // 8, mode="center",
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
    if args.steps:
        print(f"\nThen {args.steps} steps of SGD (momentum 0.9, weight decay 5e-4 as Caffe, "
              f"batch {args.batch} of training crops): loss, logits' std and the share of fc7 "
              "units that are zero for every image (dead), every "
              f"{max(1, args.steps // 5)} steps.\n")
        print("| arch | init | lr | " + " | ".join(
            f"step {s}" for s in range(0, args.steps + 1, max(1, args.steps // 5))) + " |")
        print("|---|---|---:|" + "---|" * (len(range(0, args.steps + 1,
                                                     max(1, args.steps // 5)))))
        train = iter(train_pipeline(examples, scale=(args.crop + args.crop // 8,
                                                     args.crop + args.crop // 2),
                                    crop=args.crop, batch_size=args.batch, seed=0, repeat=True))
        batches = [next(train) for _ in range(args.steps)]
        for arch in args.archs:
            for init in args.step_inits:
                for lr in args.lrs:
                    model = initialised(arch, init, width=args.width, crop=args.crop,
                                        classes=classes, seed=args.seed)
                    trace = sgd_trace(model, batches, lr, every=max(1, args.steps // 5))
                    print(f"| {arch} | {init} | {lr:g} | " + " | ".join(trace) + " |",
                          flush=True)
    print(f"\n{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
