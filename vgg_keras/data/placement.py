"""Where each step of the training recipe runs: on the host, in tf.data (and so on the tf.data
service's workers), or on the device, as Keras layers in the training step.

One :class:`Placement` decides it for the pipeline (:func:`vgg_keras.data.train_pipeline`), its
service workers and the trainer's augmentation layers, so that each step runs exactly once.

>>> Placement().host_flips, Placement(augment="device").device_flips
(True, True)
>>> Placement(augment="device", boxes=True).device_flips     # boxes follow the host's flip
False
>>> Placement(resample="device").augment     # the colour shift follows the resampling
'device'
>>> Placement(resample="device").window_bucket(224)
340
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import transforms

PLACES = ("host", "device")


@dataclass(frozen=True)
class Placement:
    """Where the steps of a training crop run.

    Args:
        augment: where the flip and the colour shift run, ``"host"`` or ``"device"``; by
            default where the crop is resampled.
        resample: where the crop is resampled. ``"device"`` (which needs ``augment="device"``)
            has the host decode only the window each crop reads, as uint8 in a fixed
            ``bucket x bucket``, with where the crop samples it and whether it is flipped; the
            bilinear resampling runs batched in the training step
            (:class:`vgg_keras.augment.WindowCrop`).
        boxes: the examples carry boxes, which must follow the flip: it is then drawn on the
            host, with the crop.
        bucket: the window bucket's side for ``resample="device"``;
            :func:`vgg_keras.transforms.window_bucket` of the crop by default.
    """

    augment: str | None = None
    resample: str = "host"
    boxes: bool = False
    bucket: int | None = None

    def __post_init__(self) -> None:
        for name in ("resample", "augment"):
            if name == "augment" and self.augment is None:
                object.__setattr__(self, "augment", self.resample)
            if getattr(self, name) not in PLACES:
                raise ValueError(f"{name} must be 'host' or 'device', got "
                                 f"{getattr(self, name)!r}.")
        if self.resample == "device" and self.augment != "device":
            raise ValueError("resample='device' needs augment='device': the colour shift "
                             "follows the resampling, in the training step.")
        if self.bucket is not None and self.resample != "device":
            raise ValueError("bucket is the window size of resample='device'.")

    @property
    def host_flips(self) -> bool:
        """The flip is drawn on the host: where it augments, where boxes follow the flip, and
        where the device resamples by the host's geometry (which carries the flip)."""
        return self.augment == "host" or self.boxes or self.resample == "device"

    @property
    def device_flips(self) -> bool:
        """The training step's augmentation layers flip (the complement of ``host_flips``)."""
        return not self.host_flips

    @property
    def host_shifts_colour(self) -> bool:
        """The colour shift runs on the host; otherwise in the training step."""
        return self.augment == "host"

    def window_bucket(self, crop: int) -> int | None:
        """The side of the windows the host hands over, or None where it hands over crops."""
        if self.resample == "host":
            return None
        bucket = transforms.window_bucket(crop) if self.bucket is None else int(self.bucket)
        if bucket < crop:
            raise ValueError(f"bucket={bucket} must hold at least the crop ({crop}).")
        return bucket
