"""bundle.benchmarks.synthesis: the per-grid synthesis timings."""

from __future__ import annotations

from bundle.benchmarks.synthesis import FULL_SIZE_GRIDS, time_synthesis


def test_synthesis_benchmark_times_each_grid_it_is_given():
    assert FULL_SIZE_GRIDS == ("utah", "miccai2018", "siemens")
    result = time_synthesis(grids=("tiny", "tinyfov"), scans=2)
    assert result["scans_per_grid"] == 2 and list(result["grids"]) == ["tiny", "tinyfov"]
    assert result["grids"]["tiny"]["shape_zyx"] == [12, 64, 64] and result["grids"]["tinyfov"]["shape_zyx"] == [16, 96, 96]
    for timing in result["grids"].values():
        assert 0 < timing["min_s"] <= timing["median_s"] <= timing["max_s"] and timing["write_s"] >= 0
        assert timing["first_s"] > 0  # the process's first scan of the grid, timed apart
