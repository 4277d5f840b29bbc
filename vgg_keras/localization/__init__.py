"""Localisation (paper Appendix A): a box-regression head fine-tuned from a classifier with a
Euclidean loss, and both test protocols.

A localizer (:func:`vgg_keras.models.build_localizer`) predicts ``[cx, cy, w, h]`` relative to
its input crop: one box (single-class regression, SCR) or one per class (per-class regression,
PCR). The package is split by concern:

* :mod:`.losses`: the box loss, its metrics and the packing of targets;
* :mod:`.protocols`: protocol 1 (Table 8) and protocol 2 (Table 9) and their tables;
* :mod:`.training`: ``train_localizer``, what train_loc.py runs (a task, above the run layer,
  so it is imported from its module and not here: the losses and protocols are used below it).

>>> from vgg_keras.localization.training import train_localizer
>>> summary = train_localizer(init_from="runs/cls_a/model.keras", regression="pcr", crop=64,
...                           scale=(72, 96), epochs=10, batch_size=32,
...                           run_dir="runs/loc_a")   # doctest: +SKIP
"""

from ..heads import BOX_LAYER, PRIOR_BOX, REGRESSIONS, BoxRegression, is_localizer, regression_of
from .losses import MONITOR, BoxAccuracy, BoxL2, BoxRegressionLoss, pack_targets
from .protocols import (
    Protocol1Image, Protocol2Image, dense_boxes, format_table8, format_table9,
    localization_errors, localize_image, location_rates, protocol1, protocol1_per_image,
    protocol2, protocol2_per_image, run_protocol1, run_protocol2,
)

__all__ = [
    "BOX_LAYER", "MONITOR", "PRIOR_BOX", "Protocol1Image", "Protocol2Image", "REGRESSIONS",
    "BoxAccuracy", "BoxL2", "BoxRegression",
    "BoxRegressionLoss", "dense_boxes", "format_table8", "format_table9", "is_localizer",
    "localization_errors", "localize_image", "location_rates", "pack_targets", "protocol1",
    "protocol1_per_image", "protocol2", "protocol2_per_image",
    "regression_of", "run_protocol1", "run_protocol2",
]
