"""Jobs the CUDA tests run in a process of their own (a process group must not outlive its test)."""
from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch import nn

from engine import train_ch13


def ddp_channels_last(out: str) -> None:
    """DDP of world size 1 on NCCL with channels_last: the weights convert before DDP builds its buckets."""
    from handlers.local import free_port
    from test_cuda import CE, data

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port("127.0.0.1")), RANK="0", WORLD_SIZE="1",
                      LOCAL_RANK="0")
    torch.cuda.set_device(0)
    dist.init_process_group("nccl")
    try:
        torch.manual_seed(0)  # a one-channel first conv (both layouts at once) and a true NHWC second one
        net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 16, 10))
        train, test = data()
        history = train_ch13(net, train, test, CE, torch.optim.SGD(net.parameters(), 0.1), 2, plot=False,
                             verbose=False, progress=False, distributed=True, channels_last=True, out_dir=out)
        assert net.training is False and history.train_loss[-1] < history.train_loss[0], history
        assert net[2].weight.is_contiguous(memory_format=torch.channels_last) and not net[2].weight.is_contiguous()
    finally:
        dist.destroy_process_group()
    print("ok")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    {"ddp-channels-last": ddp_channels_last}[sys.argv[1]](*sys.argv[2:])
