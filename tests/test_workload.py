"""The reversal workload (issue 8) on CPU: the twins agree, the model learns, the evaluation scores
a perfect model perfectly, the PNG is valid, the progress bar's format, the main job's files."""
import io
import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from vibetensor import cli
from vibetensor.workloads import reversal as R
from vibetensor.workloads.plot import encode_png, line_plot, nice_ticks
from vibetensor.workloads.progress import Progress, format_bar

STEPS = 50  # issue 8: "50 steps of a small configuration, loss equal to the PyTorch twin's within 1e-4"


@pytest.fixture(scope="module")
def twin_losses():
    """STEPS steps of TINY on both frameworks: torch's own random init, copied into ours; same batches."""
    cfg = replace(R.TINY, iters=STEPS)
    X, Y = R.batches(cfg)
    torch.manual_seed(0)
    T, step = R.build(torch)
    tmodel = T(cfg)
    V, vstep = R.build(vt)
    vmodel = V(cfg)
    vmodel.load_state_dict({k: vt.from_numpy(v.detach().numpy().copy()) for k, v in tmodel.state_dict().items()})
    curves = {}
    for fw, model, fn in ((torch, tmodel, step), (vt, vmodel, vstep)):
        opt = fw.optim.SGD(model.parameters(), lr=cfg.lr)
        Xd, Yd = R.upload(fw, X, Y, "cpu")
        curves[fw.__name__] = R.train(fw, lambda x, y: fn(model, opt, x, y, cfg.clip), Xd, Yd)
    return curves["torch"], curves["vibetensor.torch"]


def test_twins_agree_step_by_step(twin_losses):
    ours, theirs = twin_losses[1], twin_losses[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)


def test_tiny_config_learns(twin_losses):
    ours = twin_losses[1]
    assert ours[-5:].mean() < ours[:3].mean() - 0.2, ours


def test_init_weights_identical_across_frameworks():
    cfg = R.TINY
    (tm, _, _), (vm, _, _) = R.make(torch, cfg), R.make(vt, cfg)
    tsd, vsd = tm.state_dict(), vm.state_dict()
    assert list(tsd) == list(vsd)
    for k in tsd:
        np.testing.assert_array_equal(vsd[k].numpy(), tsd[k].numpy(), err_msg=k)


def test_batches_mask_all_but_the_answer():
    cfg = R.TINY
    x, y = R.batch(np.random.default_rng(1), cfg, 32)
    assert x.shape == y.shape == (32, cfg.block) and (x[:, 0] == R.BOS).all()
    for xr, yr in zip(x, y):
        s = int(np.flatnonzero(xr == R.SEP)[0])
        L = s - 1
        scored = np.flatnonzero(yr != R.IGNORE)
        assert list(scored) == list(range(s, s + L + 1))                  # reversed symbols, then EOS
        assert list(yr[scored]) == list(xr[1:s][::-1]) + [R.EOS]


class Oracle:
    """A 'model' that predicts the next token of the correct answer (or, when wrong=True, always EOS)."""
    training = False

    def __init__(self, wrong=False):
        self.wrong = wrong

    def eval(self):
        pass

    def train(self, mode=True):
        pass

    def __call__(self, idx):                                                # (n, T) -> (n, T, V) one-hot
        x = idx.numpy()
        n, T = x.shape
        nxt = np.full((n, T), R.EOS)
        if not self.wrong:
            for r in range(n):
                s = int(np.flatnonzero(x[r] == R.SEP)[0])
                for p in range(s, min(T, 2 * s - 1)):                         # answer token j = p + 1 - s <= L
                    nxt[r, p] = x[r, 2 * s - p - 1]
        return vt.from_numpy(np.eye(R.TINY.vocab, dtype=np.float32)[nxt])


@pytest.mark.parametrize("model,token_acc,seq_acc", [(Oracle(), 1.0, 1.0), (Oracle(wrong=True), None, 0.0)])
def test_evaluate_scores_greedy_decoding(model, token_acc, seq_acc):
    tok, seq = R.evaluate(vt, model, R.TINY, n=64)
    assert seq == seq_acc
    if token_acc is not None:
        assert tok == token_acc
    else:
        assert 0.0 < tok < 0.5                                              # only the EOS of each answer


def _chunks(png):
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    i, out = 8, []
    while i < len(png):
        (n,), kind = struct.unpack(">I", png[i:i + 4]), png[i + 4:i + 8]
        data, (crc,) = png[i + 8:i + 8 + n], struct.unpack(">I", png[i + 8 + n:i + 12 + n])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF, kind
        out.append((kind, data))
        i += 12 + n
    return out


def test_png_is_valid(tmp_path):
    caption = line_plot(str(tmp_path / "p.png"), {"a": [3.0, 2.0, 1.5, float("nan"), 1.0], "b": [3.0, 2.5, 2.0]},
                        width=200, height=120, title="loss")
    assert caption.endswith("blue = a, orange = b") and caption.startswith("loss: ")
    chunks = _chunks((tmp_path / "p.png").read_bytes())
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    w, h, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (w, h, depth, colour) == (200, 120, 8, 2)
    raw = zlib.decompress(chunks[1][1])
    assert len(raw) == h * (3 * w + 1) and all(raw[r * (3 * w + 1)] == 0 for r in range(h))
    pixels = np.frombuffer(raw, np.uint8).reshape(h, 3 * w + 1)[:, 1:].reshape(h, w, 3)
    assert ((pixels == (31, 119, 180)).all(-1)).any() and ((pixels == (255, 127, 14)).all(-1)).any()


def test_png_encoder_round_trip():
    rgb = bytes(range(2 * 3 * 3 * 2))[:18]                                 # 3 x 2 pixels
    (_, ihdr), (_, idat), _ = _chunks(encode_png(3, 2, rgb))
    assert struct.unpack(">II", ihdr[:8]) == (3, 2)
    assert zlib.decompress(idat) == b"\x00" + rgb[:9] + b"\x00" + rgb[9:]


@pytest.mark.parametrize("lo,hi", [(3.37, 3.59), (0.0, 1999.0), (-1.0, 1.0), (5.0, 5.0)])
def test_nice_ticks_enclose_the_range(lo, hi):
    t = nice_ticks(lo, hi)
    assert 2 <= len(t) <= 12 and t[0] <= lo + 1e-12 and t[-1] >= hi - 1e-12


def test_progress_bar_format():
    assert format_bar(30, 100, 2.345678, 41.234, width=10) == "train [###.......]  30/100  loss 2.3457  41.2 it/s"
    assert format_bar(0, 5, width=4, prefix="x") == "x [....] 0/5"
    times = iter([0.0, 0.05, 0.5, 1.0, 1.0])
    out = io.StringIO()
    bar = Progress(4, stream=out, interval=0.2, clock=lambda: next(times))
    bar.update(1, vt.tensor(3.0))                                          # too soon after the start: no redraw
    bar.update(2, vt.tensor(2.5))
    bar.update(4, 2.0)                                                     # the end always redraws
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and "\n" not in text[:-1]
    assert "2/4  loss 2.5000  4.0 it/s" in text and text.rstrip().endswith("4/4  loss 2.0000  4.0 it/s")


def test_train_command_writes_checkpoint_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--device", "cpu", "--iters", "3", "--eval", "16", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "token accuracy" in text and "sequence accuracy" in text and "3/3" in text
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = out / "reversal.safetensors"
    assert ckpt.exists(), text
    state = vt.load(str(ckpt))
    model, _, _ = R.make(vt, R.CPU)
    assert set(state) == set(model.state_dict())
