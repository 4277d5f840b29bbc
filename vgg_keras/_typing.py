"""Type aliases of the package's signatures, for readers and type checkers.

The modules use them in annotations only (``from __future__ import annotations``), so nothing
here is evaluated when they run, and nothing here imports a backend or TensorFlow.
"""

from __future__ import annotations

import os
from typing import Any

Tensor = Any
"""A tensor of the Keras backend or an array (``tf.Tensor``, ``jax.Array``, ``torch.Tensor``,
``np.ndarray``): what ``keras.ops`` takes and returns."""

PathLike = str | os.PathLike[str]
"""A file or directory path: a string or a ``pathlib.Path``."""

Scale = int | tuple[int, int]
"""A training scale: S (single-scale) or ``(Smin, Smax)`` (scale jittering)."""

Shape = tuple[int | None, ...]
"""A tensor's shape as Keras gives it, None for a dimension not known until run time."""

__all__ = ["PathLike", "Scale", "Shape", "Tensor"]
