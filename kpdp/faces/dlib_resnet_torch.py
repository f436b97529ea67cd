"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in torch, read
straight from dlib's serialized network: no dlib, no C++ and no converted weights file needed.

The network is ``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp``: a 7x7/2 stem
(``con``, ``affine``, ``relu``, ``max_pool<3,3,2,2>``), 14 residual blocks of
``con3x3, affine, relu, con3x3, affine`` (``affine`` = batch norm frozen into a per-channel
``gamma * x + beta``; 29 convs in all), four of them ``ares_down`` blocks whose first conv has
stride 2 and whose shortcut is ``avg_pool<2,2,2,2>`` of the block input, then
``avg_pool_everything`` and ``fc_no_bias<128>``.
:func:`read_dlib_net` lists the layers the file holds and :class:`DlibResNetTorch` runs them in
that order, so layer kinds, sizes, strides and paddings all come from the file.

Conventions, read off the bytes of the shipped file (every field below is checked while reading,
and the file must end after the last layer) and dlib's ``serialize.h``, ``dnn/core.h``, ``layers.h``,
``input.h``; the numeric ones confirmed by parity with dlib 20.0.1:

* integers: one header byte (low nibble: how many little-endian bytes follow; 0x80: negative);
  strings: an integer length, then the bytes; ``bool``: the ASCII character ``'0'`` or ``'1'``;
  ``float``/``double`` outside tensors: an int64 mantissa and an int16 exponent (value = m * 2**e);
  tensors: version 2, num_samples, k, nr, nc, then float32 little endian; ``alias_tensor``:
  version 1 and its four dimensions.
* the file is ``add_loss_layer`` (version 1, ``"loss_metric_2"``, margin, distance threshold), then the
  layer stack from the top down: every ``add_layer`` writes its version (2, or 3 for the one over the
  input layer) *before* its sub-network, ``add_tag_layer``/``add_skip_layer`` write version 1 and
  nothing else. So the file holds all wrapper versions first, then the input layer, then each
  layer's fields, bottom up, each followed by three ``bool`` and three (empty) tensors, plus the
  sample expansion factor after the first. Tag ids are not serialized: the 1s only say *where*
  tags and skips sit; their ids (tag1 = block input, tag2 + skip1 in a down block) come from the
  example's source (:func:`_plan` refuses a skip that is not a down block's shortcut).
* ``input_rgb_image_sized``: per-channel means (R, G, B), and ``(pixel - mean) / 256`` in float32.
* ``con_4``: filters (out, in, kh, kw) then biases in one params tensor, cross-correlation, zero
  padding as stored (dlib's default: ``size // 2`` for stride 1, 0 otherwise, so the stride-2 convs
  drop the last row/column as torch's floor does).
* pooling: ``max_pool_2``/``avg_pool_2`` store window, stride and padding; a 0 window is
  ``avg_pool_everything`` (the mean over the whole plane).
* ``add_prev_``: the output is the element-wise maximum of the two shapes and each input is added
  where it exists, i.e. zero-padded at the end of channels, rows and columns. This network relies on
  it: a down block adds 64 channels to 32, and at 8x8 the stride-2 conv gives 3x3 while the pooled
  shortcut gives 4x4.
* ``fc_2``: params (inputs, outputs), a bias row only when bias_mode is 0 (``FC_HAS_BIAS``).
* dlib's ``compute_face_descriptor`` returns the fc output as is (``loss_metric_::to_label`` copies
  it): no L2 normalisation here either.

Caveats: float32 throughout, so results equal dlib's to rounding (<= 3e-7 on descriptors of norm ~1.4,
tests/kpdp/faces/test_dlib_resnet_torch.py); only the layer kinds above are read, and any other
kind, version or arrangement is refused with :class:`DlibFormatError` rather than guessed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .registry import dlib_model_files


class DlibFormatError(ValueError):
    """The file is not a dlib network this reader understands (truncated, corrupt, other layers)."""


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data, self.pos, self.name = data, 0, name

    def _take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DlibFormatError(f"{self.name}: truncated or corrupt at byte {self.pos} "
                                  f"(reading {what}: {n} bytes wanted, {len(self.data) - self.pos} left)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, what="an integer") -> int:
        head = self._take(1, what)[0]
        if head & 0x70 or head & 0x0F > 8:  # dlib writes at most 8 bytes and never sets 0x70
            raise DlibFormatError(f"{self.name}: bad integer header 0x{head:02x} at byte {self.pos - 1} ({what})")
        value = int.from_bytes(self._take(head & 0x0F, what), "little")
        return -value if head & 0x80 else value

    def str(self, what="a string") -> str:
        raw = self._take(self.int(what), what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise DlibFormatError(f"{self.name}: {what} at byte {self.pos - len(raw)} is not text") from None

    def float(self, what="a float") -> float:
        mantissa, exponent = self.int(what), self.int(what)
        return float(np.float32(mantissa * 2.0 ** exponent))

    def bool(self) -> bool:
        c = self._take(1, "a bool")
        if c not in (b"0", b"1"):
            raise DlibFormatError(f"{self.name}: expected a bool ('0'/'1') at byte {self.pos - 1}, got {c!r}")
        return c == b"1"

    def expect(self, value: int, what: str) -> None:
        got = self.int(what)
        if got != value:
            raise DlibFormatError(f"{self.name}: {what} is {got}, expected {value} (byte {self.pos})")

    def tensor(self, what="a tensor") -> np.ndarray:
        self.expect(2, f"{what} version")
        shape = tuple(self.int(what) for _ in range(4))
        if min(shape) < 0:
            raise DlibFormatError(f"{self.name}: {what} has a negative dimension {shape}")
        n = int(np.prod(shape))
        return np.frombuffer(self._take(4 * n, what), "<f4").astype(np.float32)

    def alias(self, what="an alias_tensor") -> tuple:
        self.expect(1, f"{what} version")
        return tuple(self.int(what) for _ in range(4))


def _conv(r: _Reader) -> dict:
    params = r.tensor("con_ params")
    f = dict(zip(("filters", "nr", "nc", "stride_y", "stride_x", "pad_y", "pad_x"), (r.int() for _ in range(7))))
    wshape, bshape = r.alias(), r.alias()
    [r.float() for _ in range(4)]  # learning-rate and weight-decay multipliers: training only
    n = int(np.prod(wshape))
    if params.size != n + int(np.prod(bshape)) or wshape[0] != f["filters"] or wshape[2:] != (f["nr"], f["nc"]):
        raise DlibFormatError(f"{r.name}: con_ params of {params.size} values do not fit filters {wshape}")
    return dict(f, weight=params[:n].reshape(wshape), bias=params[n:])


def _affine(r: _Reader) -> dict:
    params = r.tensor("affine_ params")
    gshape, bshape = r.alias(), r.alias()
    r.int("affine mode")  # CONV_MODE (0) or FC_MODE (1); the alias shape says how gamma broadcasts
    n = int(np.prod(gshape))
    if gshape != bshape or params.size != 2 * n:
        raise DlibFormatError(f"{r.name}: affine_ params of {params.size} values do not fit gamma {gshape}")
    return dict(gamma=params[:n].reshape(gshape), beta=params[n:].reshape(gshape))


def _pool(r: _Reader) -> dict:
    return dict(zip(("nr", "nc", "stride_y", "stride_x", "pad_y", "pad_x"), (r.int() for _ in range(6))))


def _fc(r: _Reader) -> dict:
    outputs, inputs = r.int(), r.int()
    params = r.tensor("fc_ params")
    r.alias(), r.alias()
    bias_mode = r.int("fc bias mode")
    [r.float() for _ in range(4)]
    rows = inputs + (bias_mode == 0)
    if params.size != rows * outputs:
        raise DlibFormatError(f"{r.name}: fc_ params of {params.size} values do not fit {inputs}x{outputs}")
    w = params.reshape(rows, outputs)
    return dict(weight=w[:inputs].T.copy(), bias=w[inputs] if bias_mode == 0 else None)


_LAYERS = {"con_4": _conv, "affine_": _affine, "relu_": lambda r: {}, "add_prev_": lambda r: {},
           "max_pool_2": _pool, "avg_pool_2": _pool, "fc_2": _fc}


def read_dlib_net(path) -> dict:
    """The network in ``path``: ``mean`` (R, G, B), ``size`` (rows, cols), ``layers`` (bottom-up list of
    (kind, fields)) and ``wrappers`` (the versions of the wrappers, bottom up: 2 layer, 1 tag/skip)."""
    r = _Reader(Path(path).read_bytes(), str(path))
    r.expect(1, "add_loss_layer version")
    loss = r.str("loss name")
    if loss != "loss_metric_2":
        raise DlibFormatError(f"{path}: loss layer {loss!r}, expected 'loss_metric_2' (a face-recognition net)")
    r.float("margin"), r.float("distance threshold")
    wrappers = []
    while not wrappers or wrappers[-1] != 3:
        if len(wrappers) > 10_000 or (wrappers and wrappers[-1] not in (1, 2)):
            raise DlibFormatError(f"{path}: unexpected layer wrapper version {wrappers[-1]} at byte {r.pos}")
        wrappers.append(r.int("a layer version"))
    name = r.str("input layer")
    if name != "input_rgb_image_sized":
        raise DlibFormatError(f"{path}: input layer {name!r}, expected 'input_rgb_image_sized'")
    mean = tuple(r.float("channel mean") for _ in range(3))
    size = (r.int(), r.int())
    layers = []
    for i in range(wrappers.count(2) + 1):
        kind = r.str("a layer name")
        if kind not in _LAYERS:
            raise DlibFormatError(f"{path}: layer kind {kind!r} at byte {r.pos} is not supported")
        layers.append((kind, _LAYERS[kind](r)))
        [r.bool() for _ in range(3)]
        [r.tensor("a layer's cached tensor") for _ in range(3)]
        if i == 0:
            r.int("sample expansion factor")
    if r.pos != len(r.data):
        raise DlibFormatError(f"{path}: {len(r.data) - r.pos} bytes left after the last layer (corrupt)")
    return dict(mean=mean, size=size, layers=layers, wrappers=wrappers[::-1])


def _plan(net: dict) -> list:
    """The bottom-up sequence of layers and tags/skips. A lone 1 is ``tag1`` (a block's input); a 1 1
    pair is ``tag2`` + ``skip1`` (a down block: keep the branch, go back to the block input)."""
    steps, layers, w = [], iter(net["layers"]), net["wrappers"]
    i = 0
    while i < len(w):
        if w[i] == 1:
            pair = i + 1 < len(w) and w[i + 1] == 1
            steps.append("tag2+skip1" if pair else "tag1")
            i += 2 if pair else 1
        else:
            steps.append(next(layers))
            i += 1
    for k, step in enumerate(steps):
        if step == "tag2+skip1" and not (k + 2 < len(steps) and steps[k + 1][0] == "avg_pool_2"
                                         and steps[k + 2][0] == "add_prev_"):
            raise DlibFormatError("a skip that is not the avg_pool shortcut of a down block: not this network")
    return steps


def _add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # dlib adds tensors of different shapes by zero-padding each to the larger one, at the end
    size = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:])]

    def pad(t):
        return F.pad(t, (0, size[2] - t.shape[3], 0, size[1] - t.shape[2], 0, size[0] - t.shape[1]))
    return pad(a) + pad(b)


class _Affine(torch.nn.Module):
    def __init__(self, gamma: np.ndarray, beta: np.ndarray):
        super().__init__()
        self.gamma = torch.nn.Parameter(torch.from_numpy(gamma))
        self.beta = torch.nn.Parameter(torch.from_numpy(beta))

    def forward(self, x):
        return x * self.gamma + self.beta


class DlibResNetTorch(torch.nn.Module):
    """``forward(x)``: x float (B, 3, 150, 150), RGB 0-255 chips (``dlib.get_face_chip``'s), returns
    the (B, 128) descriptors ``compute_face_descriptor`` returns, unnormalised."""

    def __init__(self, net: dict):
        super().__init__()
        self.size = tuple(net["size"])
        self.register_buffer("mean", torch.tensor(net["mean"], dtype=torch.float32).view(1, 3, 1, 1))
        self.steps, mods = [], []  # steps: (kind, index into self.layers or -1)
        for step in _plan(net):
            kind, f = (step, None) if isinstance(step, str) else step
            self.steps.append((kind, len(mods) if kind not in ("tag1", "tag2+skip1", "relu_", "add_prev_") else -1))
            if kind == "con_4":
                conv = torch.nn.Conv2d(f["weight"].shape[1], f["filters"], (f["nr"], f["nc"]),
                                       (f["stride_y"], f["stride_x"]), (f["pad_y"], f["pad_x"]))
                conv.weight.data = torch.from_numpy(f["weight"])
                conv.bias.data = torch.from_numpy(f["bias"])
                mods.append(conv)
            elif kind == "affine_":
                mods.append(_Affine(f["gamma"], f["beta"]))
            elif kind == "fc_2":
                fc = torch.nn.Linear(*f["weight"].shape[::-1], bias=f["bias"] is not None)
                fc.weight.data = torch.from_numpy(f["weight"])
                if f["bias"] is not None:
                    fc.bias.data = torch.from_numpy(f["bias"].copy())
                mods.append(fc)
            elif kind in ("max_pool_2", "avg_pool_2"):
                if f["pad_y"] or f["pad_x"]:  # dlib's padded pooling is not needed here, so not verified
                    raise DlibFormatError(f"{kind} with padding is not supported")
                if f["nr"] == 0 and f["nc"] == 0 and kind == "avg_pool_2":
                    mods.append(torch.nn.AdaptiveAvgPool2d(1))  # avg_pool_everything
                else:
                    pool = torch.nn.MaxPool2d if kind == "max_pool_2" else torch.nn.AvgPool2d
                    mods.append(pool((f["nr"], f["nc"]), (f["stride_y"], f["stride_x"])))
        self.layers = torch.nn.ModuleList(mods)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != (3, *self.size):
            raise ValueError(f"expected chips of shape (B, 3, {self.size[0]}, {self.size[1]}), got {tuple(x.shape)}")
        x = (x - self.mean) / 256.0
        block_in = branch = None
        for kind, i in self.steps:
            if kind == "tag1":
                block_in = x
            elif kind == "tag2+skip1":
                branch, x = x, block_in
            elif kind == "add_prev_":
                x, branch = _add_prev(x, branch if branch is not None else block_in), None
            elif kind == "relu_":
                x = torch.relu(x)
            else:
                x = self.layers[i](x.flatten(1) if kind == "fc_2" else x)
        return x

    @staticmethod
    def chips_to_tensor(chips) -> torch.Tensor:
        """(B, 3, H, W) float of a list of HxWx3 uint8 RGB chips."""
        return torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float().contiguous()


def default_path() -> Path:
    return Path(dlib_model_files().face_recognition_model_location())


def load_dlib_resnet_torch(path=None) -> DlibResNetTorch:
    """The network of ``path`` (default: face_recognition_models' ``dlib_face_recognition_resnet_model_v1.dat``)."""
    return DlibResNetTorch(read_dlib_net(path or default_path()))
