"""The noise tests behind every documented comparison (bench/noise.py) give the textbook p."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def noise():
    spec = importlib.util.spec_from_file_location("noise", ROOT / "bench" / "noise.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("table", [(14, 500, 2, 500), (284, 1320, 166, 1320), (3, 10, 9, 12),
                                   (0, 50, 0, 60), (7, 500, 7, 500)])
def test_fisher_equals_scipy(noise, table):
    a, n_a, b, n_b = table
    expected = stats.fisher_exact([[a, n_a - a], [b, n_b - b]])[1]
    assert noise.fisher(a, n_a, b, n_b) == pytest.approx(expected, rel=1e-9)


def test_mcnemar_is_the_exact_binomial_test_on_discordant_images(noise):
    rng = np.random.default_rng(0)
    first = rng.random(500) < 0.9
    second = np.where(rng.random(500) < 0.1, ~first, first)
    only_first, only_second, p = noise.mcnemar(first, second)
    assert only_first == np.sum(first & ~second) and only_second == np.sum(second & ~first)
    expected = stats.binomtest(only_first, only_first + only_second, 0.5).pvalue
    assert p == pytest.approx(expected, rel=1e-9)


def test_bootstrap_interval_holds_the_error_and_narrows_with_images(noise):
    low, high = noise.bootstrap_interval(28, 1000)
    assert low < 2.8 < high
    small = noise.bootstrap_interval(7, 250)
    assert high - low < small[1] - small[0]


def test_documented_comparisons_say_noise_where_the_test_does(noise, capsys):
    noise.main(["claims"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| Table")]
    assert len(rows) == len(noise.CLAIMS) >= 30
    for claim, row in zip(noise.CLAIMS, rows):
        assert ("not distinguishable" in row) == (claim.p() >= 0.05), row
