"""Folders too large for one process: deterministic shards of a folder run (``mrcnn detect
--input DIR``, ``mrcnn splash --input-dir DIR``), their part files, and what a rerun skips.

Which shard a process runs comes from ``--shard I/N`` or from the variables ``torchrun`` sets
(RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE): :func:`shard_from_environment`. The inputs
are the folder's files sorted by name; input ``i`` belongs to shard ``i % N``
(:func:`shard_indices`). Round robin rather than contiguous blocks: neighbouring names are
often alike (one camera, one size, one scene), so blocks would hand one process all the large
ones; any process computes the same split without talking to the others.

Every shard keeps its state in ``<output>/.shards/`` (:class:`ShardFolder`):

- ``<kind>.<i>-of-<N>.started.json``: written before the shard's first output, so that a rerun
  knows the outputs already there are this run's (a killed process's), not the user's;
- ``<kind>.<i>-of-<N>.json``: the shard's part, written atomically when the shard is done: its
  per-input records (detections, outputs, failures). Only a whole part counts as finished.

Both carry the run's key (:func:`run_key`: the input names and sizes, the model file's
identity, the settings that change the outputs, N). A rerun with the same key skips finished
shards and, in an unfinished one, reuses what the killed process completed; files of a run
with another key are refused unless ``--overwrite`` (then this run starts over and the merge
removes the other run's files).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mrcnn.outputs import VIDEO_SUFFIXES, OutputError, check_new_outputs, write_output

#: The folder, inside the output folder, holding the shards' markers and parts.
SHARDS_FOLDER = ".shards"
#: Marks a part or marker file of this module.
FORMAT = "mrcnn-shard"
#: The devices that mean "CUDA when available", which each local process turns into its own GPU.
_ANY_CUDA = (None, "", "auto", "cuda")


@dataclass(frozen=True)
class Shard:
    """One process's share of a folder run: shard ``index`` of ``count``.

    ``local_rank`` and ``local_count`` are this process's place among the processes on its
    machine (torchrun's LOCAL_RANK, LOCAL_WORLD_SIZE); None and 1 for ``--shard``.
    """

    index: int
    count: int
    local_rank: int | None = None
    local_count: int = 1

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``I/N`` (0 <= I < N) as a :class:`Shard`.

    Raises:
        ValueError: one line saying what is wrong and an example.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"--shard {text!r}: give I/N, shard I of N counted from 0, e.g. 0/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ValueError(f"--shard {text!r}: N is the number of shards, at least 1")
    if index >= count:
        raise ValueError(
            f"--shard {text!r}: I counts from 0, so it must be below N (0 to {count - 1})"
        )
    return Shard(index, count)


def shard_from_environment(
    given: str | None, environ: Mapping[str, str] | None = None
) -> Shard | None:
    """This process's shard: ``--shard`` when given, else torchrun's RANK of WORLD_SIZE when
    WORLD_SIZE is above 1, else None (one process does everything).

    Raises:
        ValueError: ``--shard`` given under a torchrun of several processes, or bad values.
    """
    environ = os.environ if environ is None else environ
    world = _int_variable(environ, "WORLD_SIZE", 1)
    if given is not None:
        if world > 1:
            raise ValueError(
                f"--shard {given} under torchrun (WORLD_SIZE={world}): torchrun assigns the "
                "shards; drop --shard, or run without torchrun"
            )
        return parse_shard(given)
    if world <= 1:
        return None
    rank = _int_variable(environ, "RANK", -1)
    if not 0 <= rank < world:
        raise ValueError(
            f"RANK={environ.get('RANK')!r} with WORLD_SIZE={world}: not 0..{world - 1}"
        )
    local_rank = _int_variable(environ, "LOCAL_RANK", 0)
    return Shard(rank, world, local_rank, max(1, _int_variable(environ, "LOCAL_WORLD_SIZE", 1)))


def _int_variable(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not a whole number") from None


def shard_indices(total: int, shard: Shard) -> list[int]:
    """The indices, into the sorted inputs, of ``shard``'s inputs: ``i`` with
    ``i % count == index``. The shards of one count partition ``range(total)``."""
    return list(range(shard.index, total, shard.count))


def threads_per_process(cores: int, local_count: int) -> int:
    """CPU threads for each of ``local_count`` processes sharing ``cores``: at least 1."""
    return max(1, cores // max(1, local_count))


def shard_threads(shard: Shard, environ: Mapping[str, str] | None = None) -> int | None:
    """The torch thread count for a process of several on one machine, or None to leave it.

    torchrun sets OMP_NUM_THREADS=1 in every process when it starts several and the variable
    was not set; that default gives way to ``cores // local processes``. An OMP_NUM_THREADS the
    user chose (another value) stands, and so does a config's CPU_THREADS (the model sets it
    after this).
    """
    environ = os.environ if environ is None else environ
    if shard.local_count <= 1 or environ.get("OMP_NUM_THREADS", "1").strip() != "1":
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return threads_per_process(cores or 1, shard.local_count)


def shard_device(device: str | None, shard: Shard, cuda_devices: int) -> str | None:
    """The device of a process under torchrun: "CUDA when available" (``device`` None, "auto"
    or "cuda") becomes ``cuda:<local rank modulo the GPUs>`` so that the processes of one
    machine use its GPUs in turn; anything else (``cpu``, ``cuda:1``) is kept."""
    if shard.local_rank is None or device not in _ANY_CUDA or cuda_devices < 1:
        return device
    return f"cuda:{shard.local_rank % cuda_devices}"


def prepare_process(shard: Shard, device: str | None) -> str | None:
    """Set this process's torch thread count (:func:`shard_threads`) and return its device
    (:func:`shard_device`; ``device`` None when the user chose none)."""
    import torch  # why here: the rest of this module is plain files, usable without torch

    threads = shard_threads(shard)
    if threads is not None:
        torch.set_num_threads(threads)
    cuda = torch.cuda.device_count() if shard.local_rank is not None else 0
    return shard_device(device, shard, cuda)


def unique_stems(paths: Sequence[Path], reserved: Sequence[str] = ()) -> list[str]:
    """Output base names: the stems, with the extension kept where two files share a stem or
    the stem is one of ``reserved``: ``a.jpg``, ``a.png`` give ``a_jpg``, ``a_png``."""
    stems = [p.stem for p in paths]
    return [
        p.stem
        if stems.count(p.stem) == 1 and p.stem not in reserved
        else f"{p.stem}_{p.suffix.lstrip('.')}"
        for p in paths
    ]


def splash_targets(paths: Sequence[Path], out: Path) -> list[Path]:
    """The splash of each input in a sharded run: ``<out>/<stem>_splash.png`` (``.mp4`` for a
    video), one name per input (:func:`unique_stems`), so every shard knows every name."""
    return [
        out / f"{stem}_splash{'.mp4' if path.suffix.lower() in VIDEO_SUFFIXES else '.png'}"
        for stem, path in zip(unique_stems(paths), paths, strict=True)
    ]


# ------------------------------------------------------------------------------------------------
# The run's key: what must match for a rerun to reuse the parts
# ------------------------------------------------------------------------------------------------
def file_identity(spec: str | os.PathLike | None) -> dict:
    """Name, size and modification time of a model file, or the name alone ("coco", None):
    the same file on every machine of a shared folder, a new checkpoint at the same path not."""
    path = Path(str(spec)) if spec is not None else None
    if path is None or not path.is_file():
        return {"name": None if spec is None else str(spec)}
    stat = path.stat()
    return {"name": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def inputs_digest(paths: Sequence[Path]) -> str:
    """SHA-256 of the inputs' names and sizes, in order (the folder itself may be mounted at
    another place on another machine)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def run_key(paths: Sequence[Path], model: dict, settings: Mapping, count: int) -> dict:
    """The key that a rerun must share to reuse parts (JSON types only).

    Args:
        paths: the sorted inputs of the whole run.
        model: :func:`file_identity` of the weights or the exported model.
        settings: the flags that change the outputs (config, --set, effect, ...).
        count: the number of shards.
    """
    key = {
        "inputs": {"files": len(paths), "sha256": inputs_digest(paths)},
        "model": model,
        "settings": dict(settings),
        "shards": count,
    }
    return json.loads(json.dumps(key, sort_keys=True, default=str))


_WHAT = {"inputs": "input files", "model": "model file", "settings": "settings", "shards": "N"}


# ------------------------------------------------------------------------------------------------
# The shards' files
# ------------------------------------------------------------------------------------------------
class ShardFolder:
    """The markers and parts of one run's shards in ``<out>/.shards``.

    Args:
        out: the run's output folder (created).
        kind: names the files (``detections``, ``splash``).
        shard: this process's shard.
        key: :func:`run_key` of the run.
    """

    def __init__(self, out: Path, kind: str, shard: Shard, key: dict) -> None:
        self.folder = Path(out) / SHARDS_FOLDER
        self.kind, self.shard, self.key = kind, shard, key
        self.folder.mkdir(parents=True, exist_ok=True)

    def part_path(self, index: int | None = None) -> Path:
        index = self.shard.index if index is None else index
        return self.folder / f"{self.kind}.{index}-of-{self.shard.count}.json"

    def marker_path(self) -> Path:
        return self.part_path().with_suffix(".started.json")

    def finished(self) -> bool:
        """Whether this shard's part of this run is written (whole: parts are atomic)."""
        return self._read_ours(self.part_path()) is not None

    def resuming(self) -> bool:
        """Whether this run's shard was started before (its outputs there are the run's)."""
        return self._read_ours(self.marker_path()) is not None

    def check_fresh(self, targets: Iterable[Path], inputs: Iterable[Path], overwrite: bool):
        """Before a shard's first output: refuse its outputs where files exist (or are inputs)
        and the files of another run in ``.shards``, unless ``overwrite``.

        Raises:
            OutputError: one line naming the files, or what differs from the other run.
        """
        other = self._other_run()
        if other and not overwrite:
            raise OutputError(
                f"{self.folder} holds shards of another {self.kind} run (other {other}); pass "
                "--overwrite to start this run over there, or choose another --output folder"
            )
        check_new_outputs(targets, inputs, overwrite)

    def started_ns(self) -> int:
        """When this shard's marker was written (ns since the epoch; 0 without one): outputs
        older than it are not this run's."""
        try:
            return self.marker_path().stat().st_mtime_ns
        except OSError:
            return 0

    def start(self) -> None:
        """Write this shard's marker: its outputs from here on are this run's."""
        self._write(self.marker_path(), {})

    def finish(self, records: list[dict]) -> Path:
        """Write this shard's part (atomically): its ``records``, one per input."""
        return self._write(self.part_path(), {"records": records})

    def parts(self) -> list[dict] | None:
        """Every shard's part of this run, by shard index; None while any is missing."""
        parts = [self._read_ours(self.part_path(i)) for i in range(self.shard.count)]
        return None if any(p is None for p in parts) else parts

    def missing(self) -> list[int]:
        """The shards whose part of this run is not written yet."""
        return [i for i in range(self.shard.count) if self._read_ours(self.part_path(i)) is None]

    def tidy(self) -> list[Path]:
        """Remove the files of other runs (another key or N): once this run's parts are all
        there, nothing refers to them."""
        removed = []
        for path in self._own_files():
            data = _read_json(path)
            if not data or data.get("key") != self.key:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
        return removed

    def _other_run(self) -> str:
        """What differs in the first file of another run ("" when none): "model file", ..."""
        for path in self._own_files():
            data = _read_json(path)
            if data is not None and data.get("key") != self.key:
                theirs = data.get("key") or {}
                diff = [w for k, w in _WHAT.items() if theirs.get(k) != self.key.get(k)]
                return ", ".join(diff) or "format"
        return ""

    def _own_files(self) -> list[Path]:
        pattern = re.compile(rf"^{re.escape(self.kind)}\.\d+-of-\d+(\.started)?\.json$")
        with contextlib.suppress(OSError):
            return sorted(p for p in self.folder.iterdir() if pattern.match(p.name))
        return []

    def _read_ours(self, path: Path) -> dict | None:
        data = _read_json(path)
        return data if data is not None and data.get("key") == self.key else None

    def _write(self, path: Path, payload: dict) -> Path:
        head = {"format": FORMAT, "kind": self.kind, "shard": self.shard.index}
        return write_output(path, json.dumps({**head, "key": self.key, **payload}))


def _read_json(path: Path) -> dict | None:
    """A part or marker of this module, or None (absent, unreadable, another format)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


# ------------------------------------------------------------------------------------------------
# Running a shard
# ------------------------------------------------------------------------------------------------
@dataclass
class ShardRun:
    """What :func:`run_shard` did.

    Attributes:
        records: this shard's records (None: it was finished before and skipped).
        parts: every shard's part once all are finished (this run's key), else None.
        done: inputs this process worked on.
        reused: inputs of an unfinished shard that a killed process had completed.
    """

    records: list[dict] | None
    parts: list[dict] | None
    done: int = 0
    reused: int = 0


def run_shard(
    folder: ShardFolder,
    indices: Sequence[int],
    work: Callable[[int], dict],
    *,
    targets: Iterable[Path],
    inputs: Iterable[Path],
    overwrite: bool,
    reuse: Callable[[int], dict | None] = lambda index: None,
) -> ShardRun:
    """Run one shard: skip it when finished; else check its outputs (a fresh shard) or reuse
    what a killed process completed (``reuse(index)``: the input's record from its outputs,
    or None to redo it), ``work(index)`` the rest, and write the part.

    Args:
        folder: the shards' files.
        indices: this shard's inputs (:func:`shard_indices`).
        work: the record (a JSON-able dict) of input ``index``, its outputs written.
        targets: this shard's outputs (checked on a fresh start) and any shared output.
        inputs: files no output may replace.
        overwrite: --overwrite: replace existing outputs and another run's shards.
    """
    if folder.finished():
        return ShardRun(None, folder.parts())
    resuming = folder.resuming()
    if not resuming:
        folder.check_fresh(targets, inputs, overwrite)
        folder.start()
    records, reused = [], 0
    for index in indices:
        record = reuse(index) if resuming else None
        reused += record is not None
        records.append(record if record is not None else work(index))
    folder.finish(records)
    return ShardRun(records, folder.parts(), len(indices) - reused, reused)


def file_shard(
    folder: ShardFolder,
    paths: Sequence[Path],
    targets: Sequence[Path],
    work: Callable[[int], dict],
    *,
    overwrite: bool,
    inputs: Iterable[Path],
) -> ShardRun:
    """One shard of a run that writes one file per input (``mrcnn splash --input-dir``):
    :func:`run_shard` where an input whose output a killed process of the run wrote whole
    is kept, not redone.

    Args:
        paths: every input of the run, sorted.
        targets: the output of each input (:func:`splash_targets`).
        work: writes input ``index``'s output; returns its record ({"index", "path",
            "output"} or with an "error").
    """
    indices = shard_indices(len(paths), folder.shard)

    def reuse(index: int) -> dict | None:
        if not complete_file(targets[index], folder.started_ns()):
            return None
        return {"index": index, "path": str(paths[index]), "output": str(targets[index])}

    return run_shard(
        folder,
        indices,
        work,
        targets=[targets[i] for i in indices],
        inputs=inputs,
        overwrite=overwrite,
        reuse=reuse,
    )


def merged_records(parts: Sequence[dict], total: int) -> list[dict]:
    """The records of all parts in input order (the order of a one-process run).

    Records carry their input's "index"; every index below ``total`` must come exactly once.

    Raises:
        ValueError: an index is missing or comes twice (shards that overlap or leave a gap).
    """
    by_index: dict[int, dict] = {}
    for part in parts:
        for record in part["records"]:
            index = int(record["index"])
            if index in by_index:
                raise ValueError(f"input {index} ({record.get('path')}) is in two shards")
            by_index[index] = record
    missing = [i for i in range(total) if i not in by_index]
    if missing or len(by_index) != total:
        raise ValueError(f"the shards leave out inputs {missing[:5]} of {total}")
    return [by_index[i] for i in range(total)]


def complete_file(path: Path, since_ns: int = 0) -> bool:
    """Whether an output written atomically is there, written at ``since_ns`` or later (an
    empty file is a name reserved by :func:`mrcnn.outputs.free_output_path`, never written;
    an older one is not this run's: another run's output that --overwrite is to replace)."""
    try:
        stat = path.stat()
    except OSError:
        return False
    return path.is_file() and stat.st_size > 0 and stat.st_mtime_ns >= since_ns
