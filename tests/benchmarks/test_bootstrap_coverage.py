"""The coverage benchmark's synthetic images have the mean AP its closed form says, and the
benchmark runs end to end."""

from __future__ import annotations

import numpy as np

from benchmarks import bootstrap_coverage as bench


def test_the_synthetic_images_mean_ap_is_the_closed_form():
    aps = bench.synthetic_image_aps(np.random.default_rng(0), 5000)
    assert set(np.round(aps, 6)) <= {0.0, 1.0, 0.5, round(1 / 3, 6), 0.25, 0.2}
    assert abs(aps.mean() - bench.true_mean_ap()) < 4 * aps.std() / np.sqrt(len(aps))


def test_the_benchmark_prints_its_table(capsys):
    assert bench.main(["--repetitions", "3", "--images", "5", "--resamples", "50"]) == 0
    printed = capsys.readouterr().out
    assert "true mean AP 0.7279" in printed and "| 5 | 3 |" in printed
