"""The project's own torch networks (the generators, the FaceNet port, and bench's Inception) run
by ONNX Runtime on the CPU.

Why: on these CPUs ONNX Runtime runs the same float32 graphs about 1.6x faster than torch
(generator 0.15 vs 0.24 s, Inception 0.10 vs 0.16 s per image on one core; issue #36,
``python -m tests.benchmarks.parity``), with outputs equal to torch's to ~1e-6: the same
arithmetic in another order, not a lower precision (bf16 was as fast for the generator but moved
pixels by up to 3 levels). CUDA devices keep torch.

The graph is exported from the loaded torch module on first use and kept in
:func:`cache_dir` under a key of the weights' hash and the exporting torch version, so each
process of a run loads it instead of exporting again. ``KPDP_INFERENCE=torch`` turns the path off
(the reference, e.g. to compare against).
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch

ENV = "KPDP_INFERENCE"
ENGINES = ("onnx", "torch")
OPSET = 17


def cache_dir() -> Path:
    """``$KPDP_ONNX_CACHE``, else ``~/.cache/kpdp/onnx``."""
    return Path(os.environ.get("KPDP_ONNX_CACHE") or Path.home() / ".cache" / "kpdp" / "onnx")


def wanted(device: str | torch.device) -> bool:
    """Whether a network on ``device`` runs through ONNX Runtime: on the CPU, unless
    ``KPDP_INFERENCE=torch``.

    Example:
        >>> wanted("cuda")
        False
    """
    engine = os.environ.get(ENV, "onnx")
    if engine not in ENGINES:
        raise ValueError(f"{ENV}={engine!r}: valid values are {', '.join(ENGINES)}")
    if torch.device(device).type != "cpu" or engine == "torch":
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OrtModule:
    """``module``'s forward as an ONNX Runtime session: called with torch tensors (batch first,
    any batch size), returns a torch tensor, or a tuple when the module returns several.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
        >>> x = torch.randn(2, 3, 8, 8)
        >>> run = OrtModule(net, (x[:1],), key="doctest-conv", directory=tempfile.mkdtemp())
        >>> bool(torch.allclose(run(x), net(x), atol=1e-5))
        True
    """

    def __init__(self, module, example: tuple, key: str, outputs: int = 1, directory: Path | str | None = None,
                 spatial: bool = False):
        """``module``: the ``nn.Module`` to export, or a function that returns it (called only when
        the graph is not cached yet). ``key``: names the graph; must change with the weights.
        ``spatial``: height and width (axes 2 and 3 of every 4-d input and output) may vary too, as
        for a fully convolutional network run on an image pyramid.
        Nothing is exported or loaded until the first call: a process that only holds the model
        (a run's driver, which checks that every backend loads) never pays for it."""
        self.module, self.example = module, tuple(example)
        self.names = [f"input_{k}" for k in range(len(example))]
        self.outputs = [f"output_{k}" for k in range(outputs)]
        self.spatial = spatial
        name = f"{key}-hw" if spatial else key
        self.path = Path(directory or cache_dir()) / f"{name}-torch{torch.__version__.split('+')[0]}-opset{OPSET}.onnx"
        self._session = None

    def session(self):
        """The ONNX Runtime session, exported (or read from the cache) on first use."""
        if self._session is None:
            import onnxruntime as ort

            if not self.path.is_file():
                _export(self.module, self.example, self.path, self.names, self.outputs, self.spatial)
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()  # a pool worker: 1, as torch's
            options.inter_op_num_threads = 1
            try:
                self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            except Exception:  # a damaged cache file: export again, once
                _export(self.module, self.example, self.path, self.names, self.outputs, self.spatial)
                self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        return self._session

    def __call__(self, *tensors: torch.Tensor):
        feed = {n: t.detach().cpu().float().contiguous().numpy() for n, t in zip(self.names, tensors)}
        out = [torch.from_numpy(o) for o in self.session().run(self.outputs, feed)]
        return out[0] if len(out) == 1 else tuple(out)


def _export(module, example, path: Path, names, outputs, spatial: bool = False) -> None:
    if not isinstance(module, torch.nn.Module):
        module = module()
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {n: {0: "batch"} for n in [*names, *outputs]}
    if spatial:
        with torch.no_grad():
            shapes = [o.shape for o in _as_tuple(module.eval()(*example))]
        for n, t in [*zip(names, example), *zip(outputs, shapes)]:
            if len(getattr(t, "shape", t)) == 4:
                axes[n].update({2: f"{n}_height", 3: f"{n}_width"})
    fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on tracing; the parity tests are the check
            torch.onnx.export(module.eval(), tuple(example), tmp, dynamo=False, opset_version=OPSET,
                              input_names=names, output_names=outputs,
                              dynamic_axes=axes)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)  # whole or absent: processes that export at once each write their own file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _as_tuple(out):
    return out if isinstance(out, (tuple, list)) else (out,)


def engine_tag(runner, sep: str = "-") -> str:
    """What a model's version gains when ``runner`` is an :class:`OrtModule` (``sep`` + ``ort``), so
    that the results and caches of the two engines are never mixed; ``""`` for a torch module.

    Example:
        >>> net = torch.nn.Identity()
        >>> engine_tag(net), engine_tag(OrtModule(net, (torch.zeros(1),), key="x"), sep="|")
        ('', '|ort')
    """
    return f"{sep}ort" if isinstance(runner, OrtModule) else ""
