"""DDP data, as the book's arithmetic asks: a new order every epoch on every rank (also with loader workers
and after a resume), uneven data sets computed as one process computes them, early stopping in step,
and the book's evaluation helper local to one process."""
from __future__ import annotations

import json

import pytest
import torch
from ddp_util import job, printed, ranks

pytestmark = pytest.mark.slow  # several processes, servers or a browser: `make test`, not `make check`


def same_weights(a, b) -> None:
    x, y = torch.load(a / "final.pt"), torch.load(b / "final.pt")
    for k in x:
        torch.testing.assert_close(x[k], y[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("workers", [0, 2])
def test_each_epoch_a_new_order_and_the_ranks_cover_the_set_once(tmp_path, workers):
    job(tmp_path, 2, 3, "--shuffle", "--workers", workers)
    seen = [r["seen"] for r in ranks(tmp_path, 2)]
    for epoch in ("1", "2", "3"):
        together = seen[0][epoch] + seen[1][epoch]
        assert sorted(together) == list(range(512))  # every example once per epoch, none padded in
        assert len(seen[0][epoch]) == len(seen[1][epoch]) == 256
    for rank in (0, 1):
        assert seen[rank]["1"] != seen[rank]["2"] != seen[rank]["3"] != seen[rank]["1"]
    assert set(seen[0]["1"]) != set(seen[0]["2"])  # a new split too, not only a new order within a rank


def test_a_resumed_run_draws_the_order_the_uninterrupted_run_drew(tmp_path):
    whole, first, rest = tmp_path / "whole", tmp_path / "first", tmp_path / "rest"
    for d in (whole, first, rest):
        d.mkdir()
    job(whole, 2, 3, "--shuffle")
    job(first, 2, 2, "--shuffle")
    job(rest, 2, 3, "--shuffle", "--resume", first / "ck")
    for a, b in zip(ranks(whole, 2), ranks(rest, 2)):
        assert list(b["seen"]) == ["3"] and b["seen"]["3"] == a["seen"]["3"]
    same_weights(whole, rest)


def test_a_shuffled_loader_trains_the_one_process_order_under_ddp(tmp_path):
    """The same script shuffling with torch's seed: 2 processes train each step on the one-process batch."""
    one, many = tmp_path / "one", tmp_path / "many"
    one.mkdir(), many.mkdir()
    job(one, 1, 2, "--shuffle")
    job(many, 2, 2, "--shuffle")
    alone, (r0, r1) = ranks(one, 1)[0]["seen"], [r["seen"] for r in ranks(many, 2)]
    for epoch in ("1", "2"):
        steps = [alone[epoch][i:i + 64] for i in range(0, 512, 64)]
        assert [sorted(a + b) for a, b in zip(*(
            [r[epoch][i:i + 32] for i in range(0, 256, 32)] for r in (r0, r1)))] == [sorted(s) for s in steps]
    assert printed(many)[0] == printed(one)[0]
    same_weights(one, many)


@pytest.mark.parametrize("nproc, train, test", [(2, 509, 1), (4, 451, 3)])
def test_uneven_data_gives_the_one_process_figures_and_weights(tmp_path, nproc, train, test):
    # 509 = 7 x 64 + 61: the last batch splits 31/30; 451 = 7 x 64 + 3: rank 3's share of it is empty.
    # A test set of 1 (or 3) examples leaves a rank (rank 3) with no test example at all.
    one, many = tmp_path / "one", tmp_path / "many"
    one.mkdir(), many.mkdir()
    args = ("--train", train, "--test", test)
    job(one, 1, 2, *args)
    job(many, nproc, 2, *args)
    assert printed(many)[0] == printed(one)[0]
    assert ranks(many, nproc)[0]["test_acc"] == pytest.approx(ranks(one, 1)[0]["test_acc"])
    seen = [r["seen"] for r in ranks(many, nproc)]
    assert sorted(sum((s["2"] for s in seen), [])) == list(range(train))
    same_weights(one, many)


def test_early_stopping_stops_every_rank_at_the_one_process_epoch(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    args = ("--lr", 0, "--early-stopping", 1)  # test acc never improves: stop after epoch 2
    job(one, 1, 5, *args)
    job(two, 2, 5, *args)
    assert [r["epochs"] for r in ranks(two, 2)] == [2, 2] == [ranks(one, 1)[0]["epochs"]] * 2


def test_the_book_evaluation_helper_on_rank_0_alone_returns_its_own_accuracy(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    job(one, 1, 2, "--local-eval")
    job(two, 2, 2, "--local-eval", timeout=120)  # rank 1 never joins: a collective would hang here
    local = json.loads((two / "local_eval.json").read_text())
    assert local == pytest.approx(ranks(two, 2)[0]["test_acc"][-1])  # rank 0's net on the whole test set
    assert json.loads((one / "local_eval.json").read_text()) == pytest.approx(ranks(one, 1)[0]["test_acc"][-1])


def test_a_mean_loss_with_an_empty_share_on_one_process_trains(tmp_path):
    """Issue 38: 65 examples, batch 64, 2 processes, ``nn.CrossEntropyLoss()``: the last batch (1 example) leaves
    one process an empty share, whose mean loss was nan, and the run died in the NaN guard."""
    job(tmp_path, 2, 2, "--train", 65, "--batch", 64, "--mean-loss")
    for record in ranks(tmp_path, 2):
        assert record["epochs"] == 2  # no nan: both epochs ran to their end on both processes
    assert "nan or inf" not in "\n".join(printed(tmp_path))
