"""The checking logic of the output drills (tools/test_quality/output_drills.py, issue 31):
the full-disk rule on fabricated outcomes, a real tmpfs fill (root only), and one SIGKILL of a
writer inside atomic_output followed by a rerun."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tools.test_quality import output_drills
from tools.test_quality.output_drills import Case, Outcome, full_disk_failures


def _case() -> Case:
    return Case("detect", ["mrcnn", "detect"], ["*.json", "*.png"])


def _said(path: Path) -> str:
    return f"mrcnn detect: error: cannot write {path}: no space left on device; free some space\n"


def test_a_clean_full_disk_failure_passes(tmp_path):
    outcome = Outcome(1, "loading weights\n" + _said(tmp_path / "a.json"), [])
    assert full_disk_failures(_case(), tmp_path, outcome) == []


def test_each_breach_of_the_full_disk_rule_is_found(tmp_path):
    case, said = _case(), _said(tmp_path / "a.json")
    assert full_disk_failures(case, tmp_path, Outcome(0, said, [])) == ["exit code 0"]
    assert full_disk_failures(case, tmp_path, Outcome(1, said * 2, [])) == [
        "2 lines say 'no space left on device'"
    ]
    assert full_disk_failures(case, tmp_path, Outcome(1, "killed\n", [])) == [
        "0 lines say 'no space left on device'"
    ]
    elsewhere = _said(Path("/elsewhere/a.json"))
    assert full_disk_failures(case, tmp_path, Outcome(1, elsewhere, [])) == [
        "the line names no output path"
    ]
    traceback = "Traceback (most recent call last):\n  ...\nOSError: x\n" + said
    assert full_disk_failures(case, tmp_path, Outcome(1, traceback, [])) == ["a traceback"]
    half = tmp_path / "a.png"
    half.write_bytes(b"\x89PNG")  # a half-written file under a final name
    temporary = tmp_path / f".a.mrcnn-tmp-{os.getpid()}.json"
    temporary.write_bytes(b"[")
    problems = full_disk_failures(case, tmp_path, Outcome(1, said, [half, temporary]))
    assert problems == [
        "files under final names: a.png",
        f"temporaries left: {temporary.name}",
    ]


@pytest.mark.skipif(output_drills.mount_reason() != "", reason="mounting a tmpfs needs root")
def test_the_tmpfs_is_filled_and_unmounted(tmp_path):
    disk = tmp_path / "disk"
    with output_drills.small_tmpfs(disk, "1M"):
        assert output_drills.fill(disk, 0).stat().st_size > 900_000
        with pytest.raises(OSError) as error, open(disk / "out" / "x.json", "wb") as stream:
            stream.write(b"x" * 8192)
            stream.flush()
            os.fsync(stream.fileno())
        assert "No space left on device" in str(error.value)
    assert not os.path.ismount(disk)


#: A writer that holds its temporary open for a while inside atomic_output (so that it can be
#: killed mid-write) and then writes a complete JSON file.
WRITER = (
    "import json, sys, time; from mrcnn.outputs import atomic_output\n"
    "with atomic_output(sys.argv[1]) as temporary:\n"
    "    with open(temporary, 'w') as stream:\n"
    "        stream.write('[1, 2'); stream.flush(); time.sleep(float(sys.argv[2]))\n"
    "        stream.write(', 3]')\n"
)


def _load_json(path: Path) -> None:
    assert json.loads(path.read_text()) == [1, 2, 3]


def test_a_kill_mid_write_then_a_rerun_leaves_a_complete_file(tmp_path):
    target = tmp_path / "out.json"
    argv = [sys.executable, "-c", WRITER, str(target)]
    seen = output_drills.kill_at([*argv, "30"], tmp_path, 0.05, after_temporary=True)
    assert seen == {"exited": False, "left a temporary": True}
    assert not target.exists()
    assert output_drills.rerun_failures([*argv, "0"], target, _load_json) == []
    # what the drill reports when a rerun fails and leaves a temporary
    output_drills.kill_at([*argv, "30"], tmp_path, 0.05, after_temporary=True)
    stale = output_drills.temporaries(tmp_path)
    problems = output_drills.rerun_failures([sys.executable, "-c", "1/0"], target, _load_json)
    assert problems[0].startswith("rerun exit 1: Traceback")
    assert problems[-1] == f"temporaries left: {', '.join(p.name for p in stale)}"
