"""Input pipelines for VGG (paper Section 3): datasets, scale jittering, crops, colour shift,
boxes, and the test-time protocols, on tf.data and TensorFlow Datasets.

Importing this module registers the embedded dataset with TFDS, so ``tfds.load("vgg_shapes")``
works afterwards (it builds locally in seconds; nothing is downloaded).

>>> import vgg_keras.data as data
>>> train = data.load("vgg_shapes", "train")                # or "imagenet2012", or a directory
>>> data.info(train).class_names
('circle', 'square', 'triangle', 'diamond', 'star', 'cross', 'ring', 'crescent', 'arrow', 'heart')
>>> batches = data.train_pipeline(train, scale=(72, 96), crop=64, batch_size=32, seed=0)
>>> val = data.eval_pipeline(data.load("vgg_shapes", "validation"), test_scale=84, crop=64,
...                          mode="center", batch_size=64)

Directories are read as they are downloaded: class folders, VOC (XML boxes), and ImageNet
without TFDS (the Kaggle localization challenge folder, or the ILSVRC2012 archives unpacked with
the devkit; see :mod:`.imagenet`). Their file checks are cached in ``$VGG_KERAS_CACHE`` (default
``~/.cache/vgg_keras/listings``), so a second listing decodes only new or changed files.

Every example of every source is ``{"image": encoded bytes, "label": int32, "boxes": float32
[N, 4] normalised [ymin, xmin, ymax, xmax], "filename": string}``; see :mod:`.sources`.
"""

from . import embedded, imagenet, ops
from .errors import SplitNotFoundError
from .listing_cache import ENV_VAR as LISTING_CACHE_ENV
from .pipelines import MULTICROP_GRID, eval_pipeline, shard_batches, train_pipeline
from .placement import Placement
from .sources import (
    EMBEDDED_NAME, DatasetInfo, VggShapes, VggShapesConfig, info, load, probe_image,
    shapes_config,
)
from .splits import RunSplits, evaluation_examples, run_splits
from .stats import Statistics, compute_statistics

__all__ = [
    "EMBEDDED_NAME",
    "LISTING_CACHE_ENV",
    "MULTICROP_GRID",
    "Placement",
    "DatasetInfo",
    "RunSplits",
    "SplitNotFoundError",
    "Statistics",
    "VggShapes",
    "VggShapesConfig",
    "compute_statistics",
    "embedded",
    "imagenet",
    "eval_pipeline",
    "evaluation_examples",
    "info",
    "load",
    "ops",
    "run_splits",
    "probe_image",
    "shapes_config",
    "shard_batches",
    "train_pipeline",
]
