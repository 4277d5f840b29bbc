"""Released ImageNet weights by name: one table of the published files, each fetched once into
Keras's cache with ``keras.utils.get_file``, checked against its publisher's hash, and reused
offline from then on.

``build_vgg(arch, weights="imagenet")`` (and ``vgg16(weights="imagenet")``, ``load_vgg``,
``--init-from imagenet``, ``--evaluate imagenet``) reads :data:`RELEASES` through
:func:`resolve`: ``"imagenet"`` is the configuration's default release (keras.applications'
for D and E, which needs no PyTorch; torchvision's for A and B), ``"imagenet-keras"`` and
``"imagenet-torchvision"`` choose the publisher.

Where the files come from:

- ``$KERAS_HOME/models`` (default ``~/.keras/models``), where ``keras.applications`` keeps the
  very same keras files, so a VGG16 already fetched by Keras is reused;
- ``VGG_KERAS_WEIGHTS_MIRROR``, when set: a URL prefix that replaces the publisher's (the file
  name is appended), or a local folder holding the files under their published names (read in
  place, nothing copied), for clusters without internet;
- a download stalls for at most ``VGG_KERAS_DOWNLOAD_TIMEOUT`` seconds (default 30) without a
  byte before it is given up with :class:`WeightsUnavailable`, which names the URL, the cache
  path and how to put the file there by hand.

>>> release = find_release("imagenet", "D", include_top=False)
>>> release.publisher, release.filename
('keras.applications', 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5')
>>> [r.name for r in releases_for("A")]
['imagenet-torchvision']
>>> resolve("runs/cls-d/model.keras", "D")       # anything else is a path, returned as given
'runs/cls-d/model.keras'
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import socket
import urllib.parse
from typing import TypeGuard

from .configs import canonical_arch

log = logging.getLogger(__name__)

MIRROR_ENV = "VGG_KERAS_WEIGHTS_MIRROR"
TIMEOUT_ENV = "VGG_KERAS_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
CACHE_SUBDIR = "models"

_KERAS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications"
_TORCH_BASE = "https://download.pytorch.org/models"

KERAS_CONVENTION = "Caffe: BGR, ImageNet's mean BGR subtracted, 0-255 scale"
TORCHVISION_CONVENTION = "RGB / 255, then ImageNet's mean and std (torchvision's Normalize)"


@dataclasses.dataclass(frozen=True)
class Release:
    """One published weight file.

    ``file_hash`` is the hash its publisher checks: keras.applications' MD5 (from its source),
    torchvision's leading SHA-256 digits (in the file name). ``top1``/``top5`` are the
    single-crop ImageNet validation accuracies (%) the publisher documents (resize to 256,
    central 224 crop).
    """

    name: str
    arch: str
    publisher: str
    url: str
    file_hash: str
    hash_algorithm: str  # "md5" or "sha256-prefix"
    include_top: bool
    convention: str
    top1: float
    top5: float

    @property
    def filename(self) -> str:
        return os.path.basename(urllib.parse.urlsplit(self.url).path)

    def describe(self) -> str:
        return f"{self.publisher} {self.filename}"


def _keras(arch, model, md5, md5_notop, top5):
    file = f"{model.lower()}_weights_tf_dim_ordering_tf_kernels"
    url = f"{_KERAS_BASE}/{model.lower()}/{file}"
    return (Release("imagenet-keras", arch, "keras.applications", url + ".h5", md5, "md5", True,
                    KERAS_CONVENTION, 71.3, top5),
            Release("imagenet-keras", arch, "keras.applications", url + "_notop.h5", md5_notop,
                    "md5", False, KERAS_CONVENTION, 71.3, top5))


def _torchvision(arch, file, top1, top5):
    sha256_prefix = file.rsplit("-", 1)[1].split(".")[0]
    return (Release("imagenet-torchvision", arch, "torchvision", f"{_TORCH_BASE}/{file}",
                    sha256_prefix, "sha256-prefix", True, TORCHVISION_CONVENTION, top1, top5),)


RELEASES: tuple[Release, ...] = (
    *_keras("D", "VGG16", "64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc",
            90.1),
    *_keras("E", "VGG19", "cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6",
            90.0),
    *_torchvision("A", "vgg11-8a719046.pth", 69.02, 88.628),
    *_torchvision("B", "vgg13-19584684.pth", 69.928, 89.246),
    *_torchvision("D", "vgg16-397923af.pth", 71.592, 90.382),
    *_torchvision("E", "vgg19-dcbb9e9d.pth", 72.376, 90.876),
)
"""Every released file, keras.applications' first: for D and E the default ``"imagenet"``."""

NAMES = ("imagenet", "imagenet-keras", "imagenet-torchvision")


class WeightsUnavailable(OSError):
    """A released file is neither cached nor reachable, or fails its hash after fetching."""


def is_release_name(weights: object) -> TypeGuard[str]:
    """Whether ``weights`` names released weights rather than a file."""
    return isinstance(weights, str) and weights.lower() in NAMES


def releases_for(arch: str) -> list[Release]:
    """The releases of configuration ``arch`` with the top (one per publisher)."""
    key = canonical_arch(arch)
    return [r for r in RELEASES if r.arch == key and r.include_top]


def find_release(name: str, arch: str, *, include_top: bool = True) -> Release:
    """The file ``name`` means for ``arch``; a ValueError naming what exists when none does.
    Without the top, a file without it is preferred (keras.applications' ``_notop``)."""
    key, name = canonical_arch(arch), name.lower()
    matching = [r for r in RELEASES if r.arch == key and name in ("imagenet", r.name)]
    if not matching:
        known = sorted({f"{r.arch} ({r.name})" for r in RELEASES})
        raise ValueError(f"No released {name!r} weights for configuration {key}; released: "
                         f"{', '.join(known)}. A-LRN, C and B-5x5 were never published.")
    if not include_top:
        matching.sort(key=lambda r: r.include_top)  # stable: the publisher order stays
        return matching[0]
    return next(r for r in matching if r.include_top)


def resolve(weights: str | os.PathLike, arch: str, *, include_top: bool = True) -> str:
    """The local path of ``weights``: a released name is fetched (or found in the cache),
    anything else is returned as given."""
    if not is_release_name(weights):
        return os.fspath(weights)
    return fetch(find_release(str(weights), arch, include_top=include_top))


def cache_path(release: Release) -> str:
    """Where ``keras.utils.get_file`` keeps ``release``: ``$KERAS_HOME/models/<file>``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(os.path.expanduser(home), CACHE_SUBDIR, release.filename)


def file_matches(path: str, release: Release) -> bool:
    """Whether the file at ``path`` has the hash ``release``'s publisher gives."""
    hasher = hashlib.md5() if release.hash_algorithm == "md5" else hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            hasher.update(chunk)
    digest = hasher.hexdigest()
    return digest == release.file_hash if release.hash_algorithm == "md5" \
        else digest.startswith(release.file_hash)


def _hash_name(release):
    return "MD5" if release.hash_algorithm == "md5" else "SHA-256 prefix"


def fetch(release: Release) -> str:
    """The local path of ``release``: from the mirror folder, the cache, or downloaded into the
    cache; always checked against its hash."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror and not urllib.parse.urlsplit(mirror).scheme:
        return _from_folder(release, os.path.expanduser(mirror))
    origin = f"{mirror.rstrip('/')}/{release.filename}" if mirror else release.url
    cached = cache_path(release)
    if os.path.isfile(cached):
        if file_matches(cached, release):
            return cached
        log.warning("%s: the cached file fails its %s check (%s); fetching it again from %s",
                    cached, _hash_name(release), release.file_hash, origin)
    return _download(release, origin, cached)


def _from_folder(release, folder):
    path = os.path.join(folder, release.filename)
    if not os.path.isfile(path):
        raise WeightsUnavailable(
            f"{MIRROR_ENV}={folder} has no {release.filename} (the {release.publisher} "
            f"ImageNet weights of configuration {release.arch}); copy it there from "
            f"{release.url}, or unset {MIRROR_ENV} to use the cache {cache_path(release)}.")
    if not file_matches(path, release):
        raise WeightsUnavailable(
            f"{path} fails its {_hash_name(release)} check ({release.file_hash}): it is not "
            f"the published {release.filename} (truncated or another file); copy it again "
            f"from {release.url}.")
    return path


def _timeout():
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={text!r} is not a number of seconds.") from None
    if not value > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be positive, got {text}.")
    return value


@contextlib.contextmanager
def _socket_timeout(seconds):
    # urllib's urlretrieve, which get_file uses, takes no timeout: the default socket timeout
    # bounds every connect and read instead.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download(release, origin, cached):
    import keras

    seconds = _timeout()
    cache_dir = os.path.dirname(os.path.dirname(cached))
    # get_file moves to /tmp/.keras when the folder is not writable, or does not exist yet.
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(cached), exist_ok=True)
    log.info("Fetching %s (%s ImageNet weights of configuration %s) from %s", release.filename,
             release.publisher, release.arch, origin)
    # Under a name of this process's own, then renamed: processes fetching at once (one per
    # host of a job) never read each other's half-written file.
    partial = f"{release.filename}.part-{os.getpid()}"
    try:
        with _socket_timeout(seconds):
            path = keras.utils.get_file(partial, origin, cache_subdir=CACHE_SUBDIR,
                                        cache_dir=cache_dir, force_download=True)
    except Exception as error:  # get_file wraps network errors in a bare Exception
        reason = str(error).strip() or type(error).__name__
        raise WeightsUnavailable(
            f"Cannot fetch {release.describe()} (ImageNet weights of configuration "
            f"{release.arch}) from {origin}: {reason} (each stall is given up after {seconds:g} "
            f"s, {TIMEOUT_ENV}). No usable copy is cached at {cached}. Without internet, "
            f"download it elsewhere (curl -L -o {release.filename} {release.url}) and copy it "
            f"to {cached}, or set {MIRROR_ENV} to a folder or URL that holds it.") from error
    if not file_matches(path, release):
        os.remove(path)
        raise WeightsUnavailable(
            f"{origin} sent a file that fails its {_hash_name(release)} check "
            f"({release.file_hash}); it was not kept. Try again, or check {MIRROR_ENV}.")
    final = os.path.join(os.path.dirname(path), release.filename)
    os.replace(path, final)
    log.info("Cached %s", final)
    return final
