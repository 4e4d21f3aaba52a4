"""The book's text examples on small files in the real formats: one short epoch each, list inputs intact."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

import text_data

pytestmark = pytest.mark.slow  # several processes, servers or a browser: `make test`, not `make check`

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
sys.path.insert(0, EXAMPLES)
SUMMARY = re.compile(r"loss ([\w.+-]+), train acc ([\d.]+), test acc ([\d.]+)\n([\d.]+) examples/sec on \[device")
OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    text_data.imdb(str(root))
    text_data.snli(str(root))
    text_data.glove(str(root / "glove.txt"))
    return root


def example(name: str, data, out, *args: str, env=None) -> str:
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), "--data-dir", str(data), "--out", str(out),
                           "--epochs", "1", "--num-workers", "0", "--no-plot", "--no-progress", *args],
                          capture_output=True, text=True, timeout=600, cwd=str(out.parent),
                          env=dict(os.environ, **(env or {})))
    assert done.returncode == 0, done.stderr[-3000:]
    m = SUMMARY.search(done.stdout)
    assert m, done.stdout
    assert math.isfinite(float(m.group(1)))
    print(name, *args, "->", " | ".join(m.group(0).splitlines()), file=sys.stderr)
    return done.stdout


def test_sentiment_rnn(data, tmp_path):
    example("sentiment_rnn.py", data, tmp_path / "run", "--glove", str(data / "glove.txt"), "--batch-size", "16",
            "--num-steps", "40")


def test_sentiment_cnn_without_glove_offline_falls_back(data, tmp_path):
    out = example("sentiment_cnn.py", data, tmp_path / "run", "--batch-size", "16", "--num-steps", "40", env=OFFLINE)
    assert "[glove]" in out and "embeddings start random" in out


def test_nli_decomposable_attention(data, tmp_path):
    example("nli_attention.py", data, tmp_path / "run", "--glove", str(data / "glove.txt"), "--batch-size", "16")


def test_nli_bert_random_init_offline(data, tmp_path):
    out = example("nli_bert.py", data, tmp_path / "run", "--batch-size", "8", "--max-len", "32", env=OFFLINE)
    assert "[bert]" in out


def test_nli_bert_with_local_pretrained_parameters(data, tmp_path):
    from bert import BERTClassifier, BERTEncoder
    from text import PAD, Vocab, read_snli, tokenize

    premises, hypotheses, _ = read_snli(str(data / "snli_1.0"), True)
    vocab = Vocab(tokenize(premises) + tokenize(hypotheses), reserved_tokens=[PAD, "<mask>", "<cls>", "<sep>"])
    pretrained = BERTClassifier(BERTEncoder(len(vocab)))
    folder = tmp_path / "bert.small.torch"
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps(vocab.idx_to_token))
    state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("output.")}
    state["nsp.output.weight"] = torch.zeros(2, 256)  # the book's file also holds pretraining heads
    torch.save(state, folder / "pretrained.params")
    out = example("nli_bert.py", data, tmp_path / "run", "--batch-size", "8", "--max-len", "32",
                  "--bert-params", str(folder))
    assert "[bert]" not in out


def _recording(net: nn.Module) -> list:
    seen = []
    net.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    return seen


@pytest.mark.parametrize("which", ["attention", "bert"])
def test_list_inputs_reach_the_model_as_separate_tensors(data, which):
    from engine import train_ch13
    from nli_attention import snli_loaders
    from text_models import DecomposableAttention

    if which == "attention":
        train_iter, test_iter, vocab = snli_loaders(str(data / "snli_1.0"), 8, 12, None, 0)
        net, parts = DecomposableAttention(len(vocab), 100, 32), 2
    else:
        from bert import BERTClassifier, BERTEncoder
        from nli_bert import SNLIBERTDataset
        from text import PAD, Vocab, read_snli, tokenize

        text = read_snli(str(data / "snli_1.0"), True)
        vocab = Vocab(tokenize(text[0]) + tokenize(text[1]), reserved_tokens=[PAD, "<mask>", "<cls>", "<sep>"])
        loader = torch.utils.data.DataLoader(SNLIBERTDataset(*text, vocab, 24), 8)
        train_iter, test_iter, net, parts = loader, loader, BERTClassifier(BERTEncoder(len(vocab), 32, 64, 2, 1)), 3
        net.hidden, net.output = nn.Sequential(nn.Linear(32, 32), nn.Tanh()), nn.Linear(32, 3)
    seen = _recording(net)
    history = train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
                         torch.optim.Adam(net.parameters(), 1e-3), 1, ["cpu"], plot=False, verbose=False)
    assert math.isfinite(history.train_loss[-1])
    for X in seen:
        assert isinstance(X, list) and len(X) == parts and all(isinstance(x, torch.Tensor) for x in X)
        assert len({x.shape[0] for x in X}) == 1


def test_list_input_evaluation_equals_a_plain_loop(data):
    from engine import evaluate_accuracy_gpu
    from nli_attention import snli_loaders
    from text_models import DecomposableAttention

    _, test_iter, vocab = snli_loaders(str(data / "snli_1.0"), 7, 12, None, 0)
    torch.manual_seed(3)
    net = DecomposableAttention(len(vocab), 100, 32)
    ours = evaluate_accuracy_gpu(net, test_iter)
    net.eval()
    hits = total = 0
    with torch.no_grad():
        for (P, H), y in test_iter:
            hits += int((net([P, H]).argmax(1) == y).sum())
            total += y.numel()
    assert ours == hits / total and total == 23  # 30 rows, every 4th without a gold label


def test_vocab_glove_and_padding(tmp_path):
    from text import PAD, Vocab, load_glove, truncate_pad

    vocab = Vocab([["a", "b", "b", "c"], ["b", "c"]], min_freq=2, reserved_tokens=[PAD])
    assert vocab.idx_to_token == ["<unk>", "<pad>", "b", "c"] and vocab["zzz"] == 0
    assert truncate_pad([5, 6, 7], 5, 1) == [5, 6, 7, 1, 1] and truncate_pad([5, 6, 7], 2, 1) == [5, 6]
    path = tmp_path / "g.txt"
    path.write_text("400000 3\nb 1 2 3\nq 9 9 9\n")
    table = load_glove(str(path), vocab)
    assert table.shape == (4, 3) and table[2].tolist() == [1, 2, 3] and table[3].abs().sum() == 0
