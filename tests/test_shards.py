"""Splitting batches across processes (in one process: the ranks are given), and schedules sized per process."""
from __future__ import annotations

import copy

import pytest
import torch
from conftest import loaders, small_cnn
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset, WeightedRandomSampler

from engine import train_ch13, updates_per_epoch
from engine.distributed import shard_loader
from engine.shards import EmptySafeCollate, ShardBatches


def test_the_ranks_shares_are_the_one_process_batches():
    world = 3
    shares = [list(ShardBatches(range(10), 10, 4, r, world)) for r in range(world)]
    assert [len(s) for s in shares] == [3, 3, 3]  # every rank runs every step
    for i, batch in enumerate(([0, 1, 2, 3], [4, 5, 6, 7], [8, 9])):
        assert sorted(sum((s[i] for s in shares), [])) == batch
    assert shares[2][2] == []  # its share of the short last batch is empty
    assert [len(list(ShardBatches(range(10), 10, 4, r, 3, drop_last=True))) for r in range(3)] == [2, 2, 2]


def test_a_shuffled_order_is_the_one_process_order_drawn_from_the_same_state():
    """The ranks' shares of step i are the one-process loader's batch i when both draw from a generator seeded alike
    (and a new order each epoch, as the loader's own)."""
    data = TensorDataset(torch.arange(20))

    def one_process(epochs: int) -> list[list[int]]:
        loader = DataLoader(data, 4, shuffle=True, generator=torch.Generator().manual_seed(7))
        return [[int(i) for i in batch[0]] for _ in range(epochs) for batch in loader]

    def two_ranks(epochs: int) -> list[list[int]]:
        ranks = [DataLoader(data, batch_sampler=ShardBatches(torch.utils.data.RandomSampler(
            data, generator=g), 20, 4, r, 2), generator=g) for r, g in ((0, torch.Generator().manual_seed(7)),
                                                                        (1, torch.Generator().manual_seed(7)))]
        steps = []
        for _ in range(epochs):
            steps += [sorted(int(i) for share in step for i in share[0]) for step in zip(*ranks)]
        return steps

    assert [sorted(b) for b in one_process(2)] == two_ranks(2)
    assert one_process(2)[:5] != one_process(2)[5:]


def test_an_empty_share_collates_to_a_batch_of_no_examples():
    tensors = EmptySafeCollate(torch.utils.data.default_collate, TensorDataset(torch.ones(3, 2, 5), torch.arange(3)))
    X, y = tensors([])
    assert X.shape == (0, 2, 5) and y.shape == (0,) and y.dtype == torch.long
    mixed = EmptySafeCollate(torch.utils.data.default_collate, [{"ids": torch.ones(4), "text": "a", "n": 3}])
    batch = mixed([])
    assert batch["ids"].shape == (0, 4) and batch["text"] == [] and batch["n"].shape == (0,)


def test_a_loader_is_resharded_with_its_options_or_refused_with_the_fix(digits):
    X, y = digits
    data = TensorDataset(X[:50], y[:50])
    loader = shard_loader(DataLoader(data, 8, shuffle=True, num_workers=2, persistent_workers=True, drop_last=True),
                          True)
    assert isinstance(loader.batch_sampler, ShardBatches) and loader.batch_sampler.agree
    assert loader.num_workers == 2 and loader.persistent_workers and len(loader) == 6
    assert [b[0].shape[0] for b in loader] == [8] * 6
    mine = DataLoader(data, 8, sampler=DistributedSampler(data, num_replicas=1, rank=0))
    assert shard_loader(mine, True) is mine
    weighted = DataLoader(data, 8, sampler=WeightedRandomSampler(torch.ones(50), 50))
    with pytest.raises(ValueError, match="plain .shuffle=True/False. sampler; for a custom sampler"):
        shard_loader(weighted, True)


def test_updates_per_epoch_counts_the_short_last_group(digits):
    train, _ = loaders(*digits, 100, 10, 16)  # 7 batches
    assert updates_per_epoch(train) == 7 and updates_per_epoch(train, 2) == 4 and updates_per_epoch(train, 7) == 1


def test_a_one_cycle_schedule_shorter_than_the_run_is_refused_before_the_first_step(digits):
    train, test = loaders(*digits, 100, 20, 16)
    net = small_cnn()
    before = copy.deepcopy(net.state_dict())
    opt = torch.optim.SGD(net.parameters(), 0.1)
    short = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=7)
    with pytest.raises(ValueError, match=r"OneCycleLR has total_steps=7, but this run steps it 14 times \(2 epochs "
                                         r"x 7 updates\); build it with total_steps=num_epochs \* engine.updates_per"):
        train_ch13(net, train, test, nn.CrossEntropyLoss(reduction="none"), opt, 2, plot=False, verbose=False,
                   lr_scheduler=short)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_a_sampler_with_set_epoch_that_draws_everything_is_refused_under_ddp(monkeypatch):
    """Issue 38: any sampler with ``set_epoch`` was taken as sharded; a whole-data-set shuffler made every process
    train on all the data (weights 0.34 away from one process, no word)."""
    import ignite.distributed as idist
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, TensorDataset

    from engine.distributed import shard_loader

    class EpochShuffler(RandomSampler):
        def set_epoch(self, epoch: int) -> None:
            self.generator = torch.Generator().manual_seed(epoch)

    data = TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,)))
    monkeypatch.setattr(idist, "get_world_size", lambda: 2)
    monkeypatch.setattr(idist, "get_rank", lambda: 0)
    with pytest.raises(ValueError, match="draws all 64 examples in every process"):
        shard_loader(DataLoader(data, 8, sampler=EpochShuffler(data)), train=True)
    sharded = DataLoader(data, 8, sampler=DistributedSampler(data, num_replicas=2, rank=0))
    assert shard_loader(sharded, train=True) is sharded


def test_a_mean_loss_over_an_empty_share_adds_nothing_instead_of_nan():
    """Issue 38: 65 examples, batch 64, 2 processes: one process's share of the last batch is empty, and a mean
    loss over it was nan, ending the run in the NaN guard."""
    from engine.step import reduce_loss

    net = torch.nn.Linear(4, 3)
    y_hat, y = net(torch.empty(0, 4)), torch.empty(0, dtype=torch.long)
    loss_sum, objective = reduce_loss(torch.nn.CrossEntropyLoss()(y_hat, y), y, torch.nn.CrossEntropyLoss())
    objective.backward()
    assert float(loss_sum) == 0.0 and all(torch.isfinite(p.grad).all() for p in net.parameters())
