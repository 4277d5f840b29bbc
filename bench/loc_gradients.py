"""Why the paper's SGD fine-tunes a localizer slowly where Adam does not: the size of each
layer's first update, side by side for each initialisation of the new box layer, in one run.

The localizer is built as ``train_loc.py --init-from CLASSIFIER`` builds it (the classifier's
conv and FC layers, a random ``fc8_box`` whose bias is the whole-crop box). On the first
training batches (the training pipeline at scale S, no colour shift) the table gives, per
layer, the RMS of its kernel, the RMS gradient of the box loss, and the first update relative to
the kernel: SGD's ``lr * g`` at each ``--sgd-lrs`` (momentum 0.9 makes a steady step 10 times
that) and Adam's first step, ``lr`` per parameter whatever the gradient. A single SGD rate
moves layers whose relative steps differ by orders of magnitude; Adam moves them alike.

    python bench/loc_gradients.py --classifier runs/t3-hard/cls-d-s/model.keras \\
        --data vgg_shapes/hard --scale 112 --inits glorot paper

``--trained RUN_DIR ...`` adds, for localizers trained from that classifier, how far each
layer's kernel moved over the whole run: ``|W_end - W_start| / |W_start|``.
"""

import argparse
import os

import keras
import numpy as np
import tensorflow as tf

from vgg_keras import build_localizer, load_vgg
from vgg_keras.data import load, train_pipeline
from vgg_keras.localization.losses import BoxRegressionLoss, pack_targets


def first_updates(classifier, init, batches, classes, seed):
    """``(box loss, rows)``: the mean box loss over ``batches`` and, per kernel, ``(layer,
    RMS kernel, RMS gradient)`` with the gradient's mean square taken over the batches."""
    keras.utils.set_random_seed(seed)
    localizer = build_localizer(classifier, regression="pcr", init=init)
    loss_fn = BoxRegressionLoss(classes)
    kernels = [v for v in localizer.trainable_variables if len(v.shape) >= 2]
    squares, losses = [np.zeros(()) for _ in kernels], []
    for images, y, weights in batches:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, localizer(images, training=True), sample_weight=weights)
        losses.append(float(loss))
        for i, gradient in enumerate(tape.gradient(loss, kernels)):
            squares[i] = squares[i] + float(tf.reduce_mean(tf.square(gradient)))
    rows = [(v.path.split("/")[0], float(np.sqrt(np.mean(np.square(v.numpy())))),
             float(np.sqrt(square / len(losses)))) for v, square in zip(kernels, squares)]
    return float(np.mean(losses)), rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", required=True, help="a train_cls.py model.keras")
    parser.add_argument("--data", default="vgg_shapes/hard")
    parser.add_argument("--scale", type=int, default=112, help="training scale S")
    parser.add_argument("--inits", nargs="+", default=["glorot", "paper"],
                        help="initialisations of fc8_box (build_localizer's init)")
    parser.add_argument("--sgd-lrs", nargs="+", type=float, default=[1e-3, 1e-2])
    parser.add_argument("--adam-lr", type=float, default=3e-4)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--trained", nargs="+", default=[], metavar="RUN_DIR",
                        help="train_loc.py run directories started from --classifier")
    args = parser.parse_args()

    classifier = load_vgg(args.classifier, kind="classifier")
    classes = classifier.get_layer("fc8").units
    crop = classifier.input_shape[1]
    batches = train_pipeline(load(args.data, "train"), scale=args.scale, crop=crop,
                             batch_size=args.batch_size, boxes=True, color_shift=False, seed=0)
    batches = [(images, *pack_targets(labels["label"], labels["box"], weights["box"],
                                      num_classes=classes))
               for images, labels, weights in batches.take(args.batches)]
    for init in args.inits:
        loss, rows = first_updates(classifier, init, batches, classes, seed=0)
        print(f"\nfc8_box init {init}: box loss on the first {args.batches} batches "
              f"{loss:.4f}\n")
        print("| layer | RMS kernel | RMS gradient | "
              + " | ".join(f"SGD {lr:g}: step / kernel" for lr in args.sgd_lrs)
              + f" | Adam {args.adam_lr:g}: first step / kernel |")
        print("|---|---:|---:|" + "---:|" * (len(args.sgd_lrs) + 1))
        for name, kernel, gradient in rows:
            steps = " | ".join(f"{lr * gradient / kernel:.1e}" for lr in args.sgd_lrs)
            print(f"| {name} | {kernel:.2e} | {gradient:.2e} | {steps} | "
                  f"{args.adam_lr / kernel:.1e} |")
        relative = [gradient / kernel for _, kernel, gradient in rows]
        print(f"\nlargest / smallest relative SGD step: {max(relative) / min(relative):.0f}")
    if args.trained:
        print_moved(classifier, args.trained)


def print_moved(classifier, run_dirs):
    """Each shared layer's ``|W_end - W_start| / |W_start|`` in the localizers of ``run_dirs``."""
    localizers = [load_vgg(os.path.join(run_dir, "model.keras")) for run_dir in run_dirs]
    print("\nHow far each kernel moved in training, |W_end - W_start| / |W_start|:\n")
    print("| layer | " + " | ".join(os.path.basename(d.rstrip("/")) for d in run_dirs) + " |")
    print("|---|" + "---:|" * len(run_dirs))
    for layer in classifier.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) \
                or layer.name == "fc8":   # the localizer replaces fc8
            continue
        start = layer.weights[0].numpy()
        moved = [np.linalg.norm(loc.get_layer(layer.name).weights[0].numpy() - start)
                 / np.linalg.norm(start) for loc in localizers]
        print(f"| {layer.name} | " + " | ".join(f"{m:.3f}" for m in moved) + " |")


if __name__ == "__main__":
    main()
