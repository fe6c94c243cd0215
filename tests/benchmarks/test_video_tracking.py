"""The video tracking benchmark's scoring: a perfect prediction scores perfectly, planted
dropouts and jitter are counted, and the whole run works end to end on a tiny model."""

from __future__ import annotations

import numpy as np

from benchmarks import video_tracking as bench
from mrcnn.datasets.clips import make_clip
from mrcnn.tracking.analysis import PerFrame
from tests.helpers.tiny_model import tiny_model


def _truth(clip) -> list[dict]:
    return [dict(clip.ground_truth(t)) for t in range(len(clip))]


def test_the_ground_truth_scores_perfectly():
    clip = make_clip("crossing", 0, frames=12)
    stats = bench.clip_stats(clip, _truth(clip), seconds=1.0)
    assert stats.matched == stats.object_frames > 0 and stats.dropouts == 0
    assert np.allclose(stats.ious, 1.0) and stats.jitters and np.allclose(stats.jitters, 0.0)
    assert stats.scores.idf1 == stats.scores.mota == 1.0
    row = bench.pooled_row("truth", "crossing", [stats])
    assert row["IDF1"] == "1.000" and row["dropouts /100"] == "0.00" and row["frames/s"] == "12.0"


def test_a_planted_dropout_and_a_planted_wobble_are_counted():
    clip = make_clip("occlusion", 0, frames=12)
    results = _truth(clip)
    k = int(np.flatnonzero(clip.track_ids[5] == 3)[0])  # the bystander, always in sight
    r = results[5]
    keep = np.arange(len(r["scores"])) != k
    results[5] = {key: (v[:, :, keep] if key == "masks" else v[keep]) for key, v in r.items()}
    wobbly = results[8]["masks"].copy()
    k = int(np.flatnonzero(clip.track_ids[8] == 1)[0])  # the occluder: still, a plain move
    wobbly[:, :, k] = np.roll(wobbly[:, :, k], 2, axis=1)
    results[8] = {**results[8], "masks": wobbly}
    stats = bench.clip_stats(clip, results, seconds=1.0)
    assert stats.dropouts == 1
    assert sum(j > 0 for j in stats.jitters) == 2 and max(stats.jitters) > 0.05  # 7->8, 8->9
    assert stats.scores.misses == 1


def test_ignored_objects_count_neither_way():
    clip = make_clip("occlusion", 1, frames=24)
    results = _truth(clip)
    everything = bench.clip_stats(clip, results, 1.0, min_visibility=0.0)
    strict = bench.clip_stats(clip, results, 1.0, min_visibility=0.99)
    assert strict.object_frames < everything.object_frames
    assert strict.scores.false_positives == 0 and strict.scores.idf1 == 1.0


def test_the_benchmark_runs_end_to_end_on_a_tiny_model():
    clips = [make_clip("crossing", 0, frames=4), make_clip("cut", 0, frames=4)]
    model = tiny_model(
        IMAGES_PER_GPU=2, BACKBONE="resnet18", TOP_DOWN_PYRAMID_SIZE=32, MASK_HEAD_CHANNELS=32
    )

    class Keyed(PerFrame):
        keyframes = [0, clips[1].cut_frame]  # says it ran a full detection at the cut

    modes = [*bench.MODES, ("keyed", Keyed)]
    results = bench.benchmark(model, clips, modes, progress=lambda line: None)
    rows = bench.table_rows(results)
    table = bench.markdown(rows)
    assert len(table.splitlines()) == 2 + 3 * len(modes)  # header, rule, (2 kinds, together)
    per_frame = rows[0]
    assert per_frame["mode"] == "per-frame" and per_frame["IDF1"] == "n/a"
    assert [r["cut re-keyed"] for r in rows if r["mode"] == "keyed"] == ["-", "1/1", "1/1"]
    assert all(float(r["frames/s"]) > 0 for r in rows)
