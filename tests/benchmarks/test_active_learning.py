"""The active-learning benchmark's hard scenes are hard (small or low-contrast shapes), its
scenes do not depend on the arm, and the whole run works end to end at a tiny budget."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import active_learning as bench
from mrcnn.datasets.shapes import MIN_CONTRAST


def test_every_shape_of_a_hard_scene_is_small_or_of_low_contrast():
    made = bench.scenes(40, 10, seed=0, stream=0)
    assert sum(hard for _, _, hard in made) == 10
    for background, shapes, hard in made:
        for _, color, (_, _, size) in shapes:
            contrast = np.linalg.norm(np.subtract(color, background))
            small = size <= bench.HARD_SIZE[1]
            if hard:
                assert small or contrast <= bench.LOW_CONTRAST[1] + 1
            else:
                assert not small and contrast >= MIN_CONTRAST
    assert bench.scenes(40, 10, seed=0, stream=0) == made  # the same scenes every time
    dataset = bench.dataset_of(made[:3])
    masks, class_ids = dataset.load_mask(0)
    assert masks.shape[:2] == (128, 128) and len(class_ids) == masks.shape[2] > 0


@pytest.mark.filterwarnings("ignore:bootstrap interval from")
def test_the_benchmark_prints_its_tables_and_verdict(capsys, monkeypatch):
    trained = []  # training is the trainer's (tested there): here, what each round trains on

    def record(model, train, seed):
        trained.append(sorted(str(info["shapes"]) for info in train.image_info))

    monkeypatch.setattr(bench, "train_round", record)
    argv = "--seeds 1 --rounds 1 --budget 1 --pool 8 --pool-hard 2 --initial 4 --per-round 2"
    argv += " --val 2 --val-hard 1 --resamples 20"
    assert bench.main(argv.split()) == 0
    printed = capsys.readouterr().out
    assert "| 0 | 1 | 6 |" in printed  # seed 0, round 1, 6 labelled
    assert "Round 1, averaged over 1 seeds: rank - random = " in printed
    assert "target >= +0.03:" in printed
    # Round 0 on the 4 initial scenes; then each arm on them and 2 more of its own choice.
    assert [len(t) for t in trained] == [4, 6, 6]
    assert set(trained[0]) < set(trained[1]) and set(trained[0]) < set(trained[2])
