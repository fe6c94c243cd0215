"""Two-process DDP training on the CPU (gloo): the ranks end with identical weights."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
    from mrcnn.model import MaskRCNN
    from tests.helpers.training import config, shapes

    model = MaskRCNN("training", config(STEPS_PER_EPOCH=2, VALIDATION_STEPS=0), out)
    model.train(shapes(4), None, 0.02, epochs=1, layers="heads")
    torch.save(model.net.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_two_process_ddp_ranks_end_identical(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    # Only rank 0 wrote a checkpoint, in one run folder.
    checkpoints = list(tmp_path.glob("*/mrcnn_tiny_0001.pt"))
    assert len(checkpoints) == 1
    fresh = torch.load(checkpoints[0], weights_only=True)["model"]
    torch.testing.assert_close(fresh["rpn.conv.weight"], a["rpn.conv.weight"])
