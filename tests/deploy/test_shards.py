"""The shards of a folder run: the split, the environment torchrun sets, the part files, what a
rerun skips, reuses and refuses, and the merge in input order (mrcnn.deploy.shards)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mrcnn.deploy.shards import (
    Shard,
    ShardFolder,
    file_identity,
    file_shard,
    merged_records,
    parse_shard,
    run_key,
    shard_device,
    shard_from_environment,
    shard_indices,
    shard_threads,
    splash_targets,
    threads_per_process,
    unique_stems,
)
from mrcnn.outputs import OutputError


def test_parse_shard_and_its_one_line_errors():
    assert parse_shard("1/4") == Shard(1, 4) and parse_shard(" 0 / 1 ").label == "0/1"
    for text, says in [
        ("4/4", "must be below N (0 to 3)"),
        ("0/0", "at least 1"),
        ("1", "give I/N"),
        ("-1/2", "give I/N"),
        ("a/b", "give I/N"),
    ]:
        with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
            parse_shard(text)


def test_shard_from_torchruns_environment():
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert shard_from_environment(None, env) == Shard(3, 4, 1, 2)
    assert shard_from_environment(None, {"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert shard_from_environment(None, {}) is None
    assert shard_from_environment("1/3", {}) == Shard(1, 3)
    with pytest.raises(ValueError, match="torchrun assigns the shards"):
        shard_from_environment("0/2", env)
    with pytest.raises(ValueError, match="RANK='7' with WORLD_SIZE=4"):
        shard_from_environment(None, {**env, "RANK": "7"})


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_the_shards_of_one_count_partition_the_inputs_round_robin(count):
    for total in range(0, 13):
        shards = [shard_indices(total, Shard(i, count)) for i in range(count)]
        flat = sorted(i for shard in shards for i in shard)
        assert flat == list(range(total)), (total, shards)  # none twice, none left out
        assert all(i % count == s for s, shard in enumerate(shards) for i in shard)


def test_threads_and_devices_of_the_processes_of_one_machine():
    assert threads_per_process(16, 4) == 4 and threads_per_process(2, 4) == 1
    local = Shard(1, 4, local_rank=1, local_count=2)
    assert shard_threads(local, {"OMP_NUM_THREADS": "1"}) >= 1  # torchrun's default yields
    assert shard_threads(local, {"OMP_NUM_THREADS": "3"}) is None  # the user's count stands
    assert shard_threads(Shard(1, 4), {}) is None  # --shard: one process here, left alone
    assert shard_device(None, local, 2) == "cuda:1" and shard_device("cuda", local, 1) == "cuda:0"
    assert shard_device("cpu", local, 2) == "cpu" and shard_device("cuda:0", local, 2) == "cuda:0"
    assert shard_device(None, local, 0) is None and shard_device(None, Shard(0, 2), 2) is None


def test_unique_stems_and_splash_targets(tmp_path):
    paths = [Path("a.jpg"), Path("a.png"), Path("b.mp4"), Path("detections.png")]
    assert unique_stems(paths) == ["a_jpg", "a_png", "b", "detections"]
    assert unique_stems(paths, reserved=("detections",))[-1] == "detections_png"
    names = [p.name for p in splash_targets(paths, tmp_path)]
    assert names == [
        "a_jpg_splash.png",
        "a_png_splash.png",
        "b_splash.mp4",
        "detections_splash.png",
    ]


def test_merged_records_come_in_input_order_and_refuse_overlaps_and_gaps():
    parts = [{"records": [{"index": i} for i in shard_indices(7, Shard(s, 3))]} for s in range(3)]
    assert [r["index"] for r in merged_records(parts, 7)] == list(range(7))
    with pytest.raises(ValueError, match="input 3 .* is in two shards"):
        merged_records([*parts, {"records": [{"index": 3}]}], 7)
    with pytest.raises(ValueError, match=r"leave out inputs \[1, 4\]"):
        merged_records(parts[::2], 7)


# ------------------------------------------------------------------------------------------------
# Runs of one file per input, with a stand-in for the model's work
# ------------------------------------------------------------------------------------------------
def _inputs(tmp_path: Path, count: int = 5) -> list[Path]:
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    for i in range(count):
        (folder / f"f{i}.png").write_bytes(b"x" * (i + 1))
    return sorted(folder.iterdir())


class Work:
    """Writes each input's target; counts the inputs it worked on."""

    def __init__(self, paths, targets):
        self.paths, self.targets, self.done = paths, targets, []

    def __call__(self, index: int) -> dict:
        self.done.append(index)
        self.targets[index].write_text(f"out {index}")
        return {"index": index, "path": str(self.paths[index]), "output": str(self.targets[index])}


def _shard(tmp_path, paths, index, count, *, settings=None, overwrite=False):
    out = tmp_path / "out"
    key = run_key(paths, file_identity(None), settings or {"effect": "gray"}, count)
    folder = ShardFolder(out, "splash", Shard(index, count), key)
    targets = splash_targets(paths, out)
    work = Work(paths, targets)
    ran = file_shard(folder, paths, targets, work, overwrite=overwrite, inputs=paths)
    return folder, work, ran


def test_a_finished_shard_is_skipped_and_the_last_one_sees_every_part(tmp_path):
    paths = _inputs(tmp_path)
    folder, work, ran = _shard(tmp_path, paths, 1, 2)
    assert work.done == [1, 3] and ran.parts is None and folder.missing() == [0]
    folder, work, ran = _shard(tmp_path, paths, 0, 2)
    assert work.done == [0, 2, 4] and [len(p["records"]) for p in ran.parts] == [3, 2]
    folder, work, ran = _shard(tmp_path, paths, 1, 2)
    assert work.done == [] and ran.records is None and ran.parts is not None


def test_an_unfinished_shard_keeps_what_was_written_after_it_started(tmp_path):
    paths = _inputs(tmp_path)
    folder, work, _ = _shard(tmp_path, paths, 0, 2)
    folder.part_path().unlink()  # killed before its part: 0 and 2 written, 4 not
    (tmp_path / "out" / "f4_splash.png").unlink()
    folder, work, ran = _shard(tmp_path, paths, 0, 2)
    assert work.done == [4] and ran.reused == 2 and ran.done == 1
    assert [r["index"] for r in ran.records] == [0, 2, 4]


def test_an_unstarted_shard_refuses_existing_outputs_unless_overwrite(tmp_path):
    paths = _inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "f2_splash.png").write_text("the user's")
    with pytest.raises(OutputError, match="1 output file"):
        _shard(tmp_path, paths, 0, 2)
    folder, work, _ = _shard(tmp_path, paths, 0, 2, overwrite=True)
    assert work.done == [0, 2, 4] and (out / "f2_splash.png").read_text() == "out 2"


def test_an_older_output_is_not_taken_for_one_of_this_run(tmp_path):
    paths = _inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "f2_splash.png").write_text("another run's")
    folder, work, _ = _shard(tmp_path, paths, 0, 2, overwrite=True)
    folder.part_path().unlink()
    stat = (out / "f2_splash.png").stat()  # as if the killed run had not reached it
    os.utime(out / "f2_splash.png", ns=(stat.st_atime_ns, folder.started_ns() - 10**9))
    folder, work, _ = _shard(tmp_path, paths, 0, 2)
    assert work.done == [2]


def test_another_runs_shards_are_refused_then_replaced_with_overwrite(tmp_path):
    paths = _inputs(tmp_path)
    _shard(tmp_path, paths, 0, 2)
    with pytest.raises(OutputError, match=r"another splash run \(other settings\); pass --overw"):
        _shard(tmp_path, paths, 1, 2, settings={"effect": "blur"})
    with pytest.raises(OutputError, match=r"\(other N\)"):
        _shard(tmp_path, paths, 0, 3)
    blurred = {"effect": "blur"}
    _, work, ran = _shard(tmp_path, paths, 0, 2, settings=blurred, overwrite=True)
    assert work.done == [0, 2, 4] and ran.parts is None  # shard 1's part is the other run's
    runs = [_shard(tmp_path, paths, i, 3, overwrite=True) for i in range(3)]
    folder, work, ran = runs[-1]
    assert ran.parts is not None and work.done == [2]
    folder.tidy()
    left = sorted(p.name for p in folder.folder.iterdir())
    assert all("-of-3" in name for name in left) and len(left) == 6


def test_a_part_is_whole_json_with_the_runs_key(tmp_path):
    paths = _inputs(tmp_path)
    folder, _, _ = _shard(tmp_path, paths, 0, 1)
    part = json.loads(folder.part_path().read_text())
    assert part["format"] == "mrcnn-shard" and part["key"]["shards"] == 1
    assert part["key"]["inputs"]["files"] == 5 and len(part["records"]) == 5
    folder.part_path().write_text('{"format": "mrcnn-shard", "key"')  # cut short by hand
    assert not folder.finished()
