"""What TensorBoard shows of a run besides Keras's scalars: per epoch a few augmented training
crops as the network sees them, the learning rate, and for a localizer validation crops with
the true (green) and predicted (red) boxes; at the end the evaluation table as text.

The pictures go to ``run_dir/logs/pictures`` (``tensorboard --logdir run_dir/logs``). TensorBoard
writes through TensorFlow's summary ops, so this module imports TensorFlow, as Keras's own
TensorBoard callback does, whatever the Keras backend.

>>> import os, pathlib, tempfile
>>> from vgg_keras import build_vgg
>>> from vgg_keras.augment import training_augmentation
>>> run_dir = pathlib.Path(tempfile.mkdtemp())
>>> crops = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
>>> augmentation = training_augmentation(seed=0)
>>> callback = EpochPictures(run_dir / "logs", crops, augmentation=augmentation)
>>> model = build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125)
>>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
>>> history = model.fit(crops, np.arange(4), epochs=2, verbose=0, callbacks=[callback])
>>> [name.startswith("events.out.tfevents") for name in os.listdir(run_dir / "logs" / PICTURES)]
[True]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf

from .boxes import decode
from .fitting import seed_generators

if TYPE_CHECKING:
    from pathlib import Path

PICTURES = "pictures"
TRUE_BOX = (0.1, 0.9, 0.1, 1.0)
PREDICTED_BOX = (1.0, 0.2, 0.1, 1.0)


def _as_unit(images):
    return np.clip(np.asarray(images, np.float32) / 255.0, 0.0, 1.0)


def boxes_drawn(images: np.ndarray, true_yxyx: np.ndarray,
                predicted_yxyx: np.ndarray) -> tf.Tensor:
    """``images`` (N, H, W, 3) in [0, 255] with one true and one predicted
    ``[ymin, xmin, ymax, xmax]`` box each, drawn in green and red; float in [0, 1]."""
    boxes = np.stack([np.asarray(true_yxyx), np.asarray(predicted_yxyx)], axis=1)
    colors = np.array([TRUE_BOX, PREDICTED_BOX], np.float32)
    return tf.image.draw_bounding_boxes(_as_unit(images), boxes.astype(np.float32), colors)


class EpochPictures(keras.callbacks.Callback):
    """After each epoch, write ``crops`` (a few training crops, uint8-range floats) through the
    training ``augmentation`` layers, the learning rate, and with ``localizer`` and
    ``val_sample`` (images, ``[cx, cy, w, h, class]`` targets) its boxes on those images."""

    def __init__(self, log_dir: Path, crops: np.ndarray | dict[str, np.ndarray], *,
                 augmentation: keras.Model | None = None, localizer: keras.Model | None = None,
                 val_sample: tuple[np.ndarray, np.ndarray] | None = None,
                 regression_classes: int | None = None, max_images: int = 8) -> None:
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(log_dir / PICTURES))
        # Crops, or the windows and geometry the trainer crops them from.
        self.crops = keras.tree.map_structure(lambda t: np.asarray(t)[:max_images], crops)
        self.augmentation = augmentation
        self.localizer = localizer
        self.val_sample = val_sample
        self.regression_classes = regression_classes
        self.max_images = max_images

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        crops = self.crops
        if self.augmentation is not None and self.augmentation.layers:
            crops = self._augmented(crops)
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        with self.writer.as_default(step=epoch + 1):
            tf.summary.image("augmented training crops", _as_unit(crops),
                             max_outputs=self.max_images)
            tf.summary.scalar("learning_rate", rate)
            if self.localizer is not None and self.val_sample is not None:
                tf.summary.image("validation boxes (green true, red predicted)",
                                 self._boxes(), max_outputs=self.max_images)
        self.writer.flush()

    def _augmented(self, crops):
        """``crops`` through the training augmentation, leaving its random state as it was:
        training shares these layers, and its draws (and a resumed run's) must not depend on
        the pictures."""
        generators = seed_generators(self.augmentation)
        states = [keras.ops.convert_to_numpy(g.state.value) for g in generators]
        try:
            return keras.ops.convert_to_numpy(self.augmentation(crops, training=True))
        finally:
            for generator, state in zip(generators, states):
                generator.state.assign(state)

    def _boxes(self):
        images, targets = self.val_sample
        images, targets = images[:self.max_images], np.asarray(targets)[:self.max_images]
        outputs = np.asarray(self.localizer.predict(images, verbose=0))
        if self.regression_classes:
            per_class = outputs.reshape(len(outputs), self.regression_classes, 4)
            outputs = per_class[np.arange(len(outputs)), targets[:, 4].astype(int)]
        true = keras.ops.convert_to_numpy(decode(targets[:, :4]))
        predicted = keras.ops.convert_to_numpy(decode(outputs))
        return boxes_drawn(images, true, predicted)


def write_text(log_dir: Path, name: str, markdown: str) -> None:
    """``markdown`` (e.g. the evaluation table) as a TensorBoard text summary."""
    writer = tf.summary.create_file_writer(str(log_dir / PICTURES))
    with writer.as_default(step=0):
        tf.summary.text(name, markdown)
    writer.flush()
