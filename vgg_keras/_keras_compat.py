"""The Keras internals this package reads, in one place, because Keras 3 has no public API for
them: a layer's inbound nodes (is a model a plain chain of layers?), its random seed generators
and its sub-layers (a resumed run restores the dropout and augmentation streams, which
``save_weights`` leaves out). :func:`check` fails loudly, naming the Keras version, when one of
them has moved; the test suite runs it.

>>> check()
"""

from __future__ import annotations

from typing import Any

import keras

TESTED = "3.15"
"""The Keras release these attributes were read from."""


def inbound_nodes(layer: Any) -> list:
    """The nodes that call ``layer`` in the models it belongs to."""
    return list(layer._inbound_nodes)


def seed_generators(layer: Any) -> list:
    """The ``keras.random.SeedGenerator`` objects ``layer`` itself owns."""
    return list(getattr(layer, "_seed_generators", []))


def sublayers(layer: Any) -> list:
    """The layers ``layer`` tracks directly (a model's, or a layer's own sub-layers)."""
    return list(getattr(layer, "_layers", []))


def check() -> None:
    """Raise a RuntimeError naming the Keras version when these internals are not where this
    module reads them (on a model with a dropout layer inside a nested model)."""
    inner = keras.Sequential([keras.layers.Dropout(0.5, seed=1)])
    inputs = keras.Input((2,))
    model = keras.Model(inputs, inner(keras.layers.Dense(2)(inputs)))
    problems = []
    dense = model.layers[1]
    if not (hasattr(dense, "_inbound_nodes") and len(inbound_nodes(dense)) == 1):
        problems.append("Layer._inbound_nodes")
    dropout = inner.layers[0]
    if not any(layer is inner for layer in sublayers(model)) or \
            not any(layer is dropout for layer in sublayers(inner)):
        problems.append("Layer._layers")
    if not seed_generators(dropout) or not isinstance(seed_generators(dropout)[0],
                                                      keras.random.SeedGenerator):
        problems.append("Layer._seed_generators")
    if problems:
        raise RuntimeError(
            f"Keras {keras.__version__} has moved {', '.join(problems)}, which vgg_keras reads "
            f"(tested with Keras {TESTED}); see vgg_keras/_keras_compat.py.")
