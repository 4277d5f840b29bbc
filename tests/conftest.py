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


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """One TFDS data directory for the whole run, so the embedded dataset is built once."""
    path = tmp_path_factory.mktemp("tfds")
    os.environ["TFDS_DATA_DIR"] = str(path)
    return path
