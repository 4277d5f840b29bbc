import os
import sys
import tempfile
from pathlib import Path

import pytest

# The scripts at the top level (train_cls.py, train_loc.py) are imported by their tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Directory listings cache their file checks; keep the suite's caches out of the home folder.
os.environ["VGG_KERAS_CACHE"] = tempfile.mkdtemp(prefix="vgg_keras_listings_")
# JAX's persistent compilation cache (per worker, as a user of several processes would set it):
# the multi-process and JAX tests start the same small model in many processes, and each start
# otherwise compiles every step again.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="vgg_keras_jax_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """One TFDS data directory for the whole run, so the embedded dataset is built once."""
    path = tmp_path_factory.mktemp("tfds")
    os.environ["TFDS_DATA_DIR"] = str(path)
    return path
