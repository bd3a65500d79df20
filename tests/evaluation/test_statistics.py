"""Table I summaries, Pearson r and Bland-Altman limits on made-up numbers with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bundle.evaluation.statistics import bland_altman, mean_sd, pearson, summarize


def test_mean_sd_skips_nan_and_counts():
    assert mean_sd([1.0, 2.0, 3.0, math.nan]) == {"mean": 2.0, "sd": 1.0, "n": 3}
    assert mean_sd([5.0]) == {"mean": 5.0, "sd": 0.0, "n": 1}
    empty = mean_sd([math.nan])
    assert empty["n"] == 0 and math.isnan(empty["mean"])


def test_summarize_groups_pre_post_all():
    rows = [
        {"scan": "a", "ablation": "pre", "dsc": 0.8, "osr": math.nan},
        {"scan": "b", "ablation": "pre", "dsc": 0.6, "osr": 0.2},
        {"scan": "c", "ablation": "post", "dsc": 0.9, "osr": 0.1},
    ]
    s = summarize(rows, ["dsc", "osr"])
    assert s["pre"]["dsc"]["mean"] == pytest.approx(0.7) and s["pre"]["dsc"]["sd"] == pytest.approx(math.sqrt(0.02))
    assert s["pre"]["osr"] == {"mean": pytest.approx(0.2), "sd": 0.0, "n": 1}
    assert s["post"]["cases"] == 1 and s["all"]["cases"] == 3
    assert s["all"]["dsc"]["mean"] == pytest.approx(2.3 / 3)


def test_pearson_of_a_perfect_line_and_of_noise():
    x = np.arange(10.0)
    fit = pearson(x, 2 * x + 1)
    assert fit["r"] == pytest.approx(1.0) and fit["slope"] == pytest.approx(2.0) and fit["intercept"] == pytest.approx(1.0)
    assert pearson(x, -x)["r"] == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        pearson([1, 2], [1, 2])


def test_bland_altman_bias_and_limits():
    ref = np.array([10.0, 20.0, 30.0, 40.0])
    ba = bland_altman(ref, ref + np.array([1.0, 3.0, 1.0, 3.0]))
    assert ba["bias"] == pytest.approx(2.0)
    sd = np.std([1.0, 3.0, 1.0, 3.0], ddof=1)
    assert ba["sd"] == pytest.approx(sd)
    assert ba["lower"] == pytest.approx(2.0 - 1.96 * sd) and ba["upper"] == pytest.approx(2.0 + 1.96 * sd)
    with pytest.raises(ValueError):
        bland_altman([1.0], [1.0])


def test_pearson_refuses_a_constant_series():
    with pytest.raises(ValueError, match="constant series"):
        pearson([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
