"""A real Jupyter notebook, executed by nbclient on an ipykernel, as a d2l reader runs the book:
``train_ch13`` as the book calls it, and a hand-written book loop with ``Animator``."""
from __future__ import annotations

import json
import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

from handlers import LocalVisdom
from handlers.visdom_server.access import page_link
from visdom_util import trace_counts

ARTIFACTS = pathlib.Path(__file__).resolve().parent.parent / "test-artifacts"

CELLS = [
    """import torch
from torch import nn
from engine import Accumulator, Animator, train_batch_ch13, train_ch13, try_all_gpus
from engine.app.data import digits_loaders, job_net
train_iter, test_iter = digits_loaders(batch_size=64)
torch.manual_seed(0)
net = job_net("mlp")""",
    """train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
           torch.optim.Adam(net.parameters(), lr=1e-2), 2, try_all_gpus(), plot=False)""",
    """animator = Animator(xlabel="epoch", xlim=[1, 2], legend=["train loss", "train acc"])
net2, loss = job_net("mlp"), nn.CrossEntropyLoss(reduction="none")
trainer = torch.optim.SGD(net2.parameters(), lr=0.1)
for epoch in range(2):
    metric = Accumulator(3)
    for X, y in train_iter:
        l, acc = train_batch_ch13(net2, X, y, loss, trainer, try_all_gpus())
        metric.add(l, acc, y.shape[0])
    animator.add(epoch + 1, (metric[0] / metric[2], metric[1] / metric[2]))
print("delivered", animator.close(), animator.plotter.env, animator.window)""",
    """history = train_ch13(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
                     torch.optim.Adam(net.parameters(), lr=1e-2), 1)  # plot=True: the live window inline""",
    "animator",  # a cell ending in the Animator
    """book = Animator(xlabel="epoch", xlim=[1, 3], ylim=[0.3, 0.9], legend=["train loss", "train acc", "test acc"])
for epoch in range(3):  # the book's train_ch3 loop: it never closes its Animator
    book.add(epoch + 1, (1.0 / (epoch + 1), 0.5 + epoch / 10, 0.45 + epoch / 10))""",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LocalVisdom(env_path=str(tmp_path_factory.mktemp("visdom"))) as s:
        yield s


def _texts(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_the_books_calls_in_a_notebook(server, monkeypatch):
    monkeypatch.setenv("VISDOM_URL", server.url)
    monkeypatch.setenv("D2L_IGNITE_PLOT", "1")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    ARTIFACTS.mkdir(exist_ok=True)
    nbformat.write(nb, str(ARTIFACTS / "book_in_jupyter.ipynb"))
    train = nb.cells[1]
    assert re.search(r"^loss [\d.]+, train acc [\d.]+, test acc [\d.]+\n[\d.]+ examples/sec on "
                     r"\[device\(type='cpu'\)\]\n", _texts(train), re.M)
    shown = [o for o in train.outputs if o.output_type == "execute_result"]
    assert len(shown) == 1 and len(shown[0]["data"]["text/plain"]) < 160  # a one-line History, not its lists
    widgets = [o for o in train.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1, "one progress widget per call: " + json.dumps(train.outputs)[:800]
    assert "epoch 2/2" in widgets[0]["data"].get("text/plain", ""), widgets[0]["data"]  # the saved text reads done
    assert "Warning" not in _texts(train), _texts(train)
    m = re.search(r"delivered True (\S+) (\S+)", _texts(nb.cells[2]))
    assert m, _texts(nb.cells[2])
    assert trace_counts(server.url, m.group(1), m.group(2)) == {"train loss": 2, "train acc": 2}
    book_loop = nb.cells[2]  # Animator alone: the link and the live window, as train_ch13 shows them
    animator_link = re.search(r"Live plots: (\S+)", _texts(book_loop)).group(1)
    assert animator_link == page_link(server.url, m.group(1)), _texts(book_loop)  # with the token
    assert any(f'src="{animator_link}"' in o["data"].get("text/html", "") for o in book_loop.outputs
               if "data" in o), book_loop.outputs
    assert "training" not in _texts(book_loop).replace("train ", "")
    assert nb.cells[4].outputs == []  # a quiet cell result, not <...Animator at 0x...>
    for cell in (nb.cells[2], nb.cells[3], nb.cells[5]):  # the final curves stay in the saved notebook
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1 and len(images[0]["data"]["image/png"]) > 2000, cell.source[:60]
    live = nb.cells[3]
    link = re.search(r"Live plots: (\S+)", _texts(live)).group(1)
    frames = [o["data"]["text/html"] for o in live.outputs if "text/html" in o.get("data", {})]
    assert link.startswith(f"{server.url}/env/d2l-ignite-") and any(f'src="{link}"' in f for f in frames), frames
