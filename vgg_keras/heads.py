"""The localisation head (paper Appendix A): what makes a VGG net a localizer, and how to tell.

A localizer is a classification net whose last FC layer is replaced by a linear box regressor,
``fc8_box`` (:data:`BOX_LAYER`), a :class:`BoxRegression` layer that predicts ``[cx, cy, w,
h]`` relative to the input crop: one box (single-class regression, ``"scr"``) or one per
class (per-class regression, ``"pcr"``, class c's box at outputs ``4c:4c+4``). The layer
keeps its regression and class count in its saved config, so a saved localizer says what it
is (:func:`regression_of`); files saved before it existed (a plain ``Dense`` named
``fc8_box``) are read from the width of the output.

:func:`vgg_keras.models.build_localizer` builds one; this module, below the builders, is what
the builders, the protocols, the training and the serving export read.

>>> layer = BoxRegression("pcr", 10, kernel_initializer="zeros")
>>> layer.units, layer.get_config()["regression"], layer.get_config()["num_classes"]
(40, 'pcr', 10)
>>> from vgg_keras import build_localizer, build_vgg
>>> localizer = build_localizer(build_vgg("A", 10, input_shape=(64, 64, 3), width=0.125),
...                             regression="scr")
>>> is_localizer(localizer), regression_of(localizer)
(True, ('scr', None))
"""

from __future__ import annotations

from typing import Any

import keras

from . import boxes

REGRESSIONS = ("scr", "pcr")
"""Single-class regression (one box shared by every class) and per-class regression."""

BOX_LAYER = "fc8_box"
"""Name of the localizer's box regression layer (the classifier's ``fc8`` replaced)."""

PRIOR_BOX = boxes.PRIOR
"""``[cx, cy, w, h]`` a new ``fc8_box`` predicts before training, for every class: the whole crop.

With a zero bias a new head would predict a box of no size at the crop's corner: IoU 0 with every
object, and the box then moves only as fast as the bias learns, for PCR from a tenth of each batch
per class (an FC-only PCR run ended at mean IoU 0.0003 that way)."""


def check_regression(regression: str) -> str:
    """``regression`` in lower case, or a ValueError naming :data:`REGRESSIONS`."""
    key = str(regression).lower()
    if key not in REGRESSIONS:
        raise ValueError(f"regression must be one of {REGRESSIONS}, got {key!r}.")
    return key


def box_outputs(regression: str, num_classes: int | None) -> int:
    """Outputs of the box layer: 4 for SCR, 4 x C for PCR (which needs ``num_classes``)."""
    if check_regression(regression) == "scr":
        return 4
    if num_classes is None:
        raise ValueError("Per-class regression needs num_classes.")
    return 4 * int(num_classes)


def prior_initializer(outputs: int) -> keras.initializers.Initializer:
    """The bias initializer that starts every box of ``outputs`` at :data:`PRIOR_BOX`."""
    return keras.initializers.Constant([v for _ in range(outputs // 4) for v in PRIOR_BOX])


@keras.saving.register_keras_serializable(package="vgg_keras")
class BoxRegression(keras.layers.Dense):
    """The linear box regressor ``fc8_box``: a ``Dense`` layer of :func:`box_outputs` units that
    records its ``regression`` ("scr" or "pcr") and ``num_classes`` in its config.

    ``num_classes`` is the classes of the classifier it came from (None for SCR built without
    one); PCR needs it. The bias starts at the whole crop (:data:`PRIOR_BOX`) unless
    ``bias_initializer`` says otherwise; every other argument is ``Dense``'s.
    """

    def __init__(self, regression: str = "pcr", num_classes: int | None = None, *,
                 units: int | None = None, bias_initializer: Any = None, name: str = BOX_LAYER,
                 **kwargs: Any) -> None:
        regression = check_regression(regression)
        if num_classes is not None and (int(num_classes) != num_classes or num_classes < 1):
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}.")
        num_classes = None if num_classes is None else int(num_classes)
        outputs = box_outputs(regression, num_classes)
        if units is not None and units != outputs:
            raise ValueError(f"{regression.upper()} with num_classes={num_classes} has {outputs} "
                             f"outputs, not units={units}.")
        if bias_initializer is None:
            bias_initializer = prior_initializer(outputs)
        super().__init__(outputs, bias_initializer=bias_initializer, name=name, **kwargs)
        self.regression = regression
        self.num_classes = num_classes

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "regression": self.regression,
                "num_classes": self.num_classes}


def is_localizer(model: keras.Model) -> bool:
    """Whether ``model`` is a localization net (it has the box regression layer)."""
    return any(layer.name == BOX_LAYER for layer in model.layers)


def regression_of(localizer: keras.Model,
                  num_classes: int | None = None) -> tuple[str, int | None]:
    """``("scr", None)`` or ``("pcr", C)``: what ``localizer``'s box layer predicts.

    Read from the :class:`BoxRegression` layer's config; for a model without one (a ``.keras``
    file saved before it existed, whose ``fc8_box`` is a plain ``Dense``, or any model
    predicting boxes) inferred from the width of the output: 4 is SCR (PCR for one class is
    the same net), 4 x C is PCR. With ``num_classes`` (the data's or the classifier's), a PCR
    head for other classes is a ValueError.
    """
    head = _box_regression_layer(localizer)
    if head is not None:
        regression, classes = head.regression, head.num_classes
        units = head.units
    else:
        units = localizer.output_shape[-1]
        if units % 4:
            raise ValueError(f"{localizer.name} has {units} outputs: not 4 (SCR) or 4 x C (PCR).")
        regression, classes = ("scr", None) if units == 4 else ("pcr", units // 4)
    if regression == "scr":
        return "scr", None
    if num_classes is not None and units != 4 * num_classes:
        raise ValueError(f"{localizer.name} predicts boxes for {units // 4} classes but the data "
                         f"(or classifier) has {num_classes}.")
    return "pcr", classes


def _box_regression_layer(model: keras.Model) -> BoxRegression | None:
    for layer in model.layers:
        if layer.name == BOX_LAYER and isinstance(layer, BoxRegression):
            return layer
    return None
