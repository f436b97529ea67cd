"""What a generator training run writes and reads back.

* ``last.pt`` (:func:`save_checkpoint`): the whole state of a run on one machine (both networks, the
  EMA generator, both optimisers, step, RNG), fp32, ~170 MB for v3. A plain tensor dict read with
  ``weights_only=True``, so no pickled code runs; too large to commit, and gone with the machine.
* the generator (:func:`export_generator`): the EMA weights as fp16 safetensors with a JSON beside it,
  what the anonymiser loads (``kpdp.inpaint.load_generator``).
* the discriminator (:func:`export_discriminator`): D as fp16 safetensors with its JSON (~7 MB for v3),
  committed beside the generator so that the next chunk, on any machine, resumes with a critic that
  already knows the generator (``TrainConfig.init_discriminator``). A fresh D under a generator that
  already draws faces pushes it with a random critic's gradients: chunk 4 of v3 collapsed by step 446
  that way, and chunk 8 spent 100 D-only steps warming a new one.

Adam's state is not exported: with ``betas=(0.0, 0.99)`` the first moment is the last gradient, and
the second is re-estimated over ~100 steps, bias-corrected from the first, so a resumed chunk loses
little; the weights and the critic are what took the compute.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch


def save_checkpoint(path, G, D, G_ema, opt_g, opt_d, step, gen):
    tmp = Path(str(path) + ".tmp")
    torch.save({"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(), "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(), "step": torch.tensor(step), "rng": gen.get_state(),
                "torch_rng": torch.get_rng_state()}, tmp)
    tmp.replace(path)  # atomic: a kill mid-write never leaves a broken checkpoint


def _write(tensors: dict, out: Path, meta: dict) -> str:
    """fp16 safetensors with string metadata, and the same metadata plus the file's sha256 beside it
    as ``.json`` (where the loaders read it); returns the sha256."""
    from safetensors.torch import save_file

    tensors = {k: v.half().contiguous() if v.is_floating_point() else v.contiguous() for k, v in tensors.items()}
    meta = {k: str(v) for k, v in meta.items()}
    save_file(tensors, str(out), metadata=meta)
    digest = hashlib.sha256(Path(out).read_bytes()).hexdigest()
    Path(out).with_suffix(".json").write_text(json.dumps({**meta, "sha256": digest}, indent=2) + "\n")
    return digest


def export_generator(ckpt: Path, out: Path, meta: dict) -> str:
    """Write the EMA generator as fp16 safetensors with its metadata; returns its sha256."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    return _write(state["G_ema"], out, {**meta, "step": int(state["step"])})


def export_discriminator(ckpt: Path, out: Path, meta: dict) -> str:
    """Write the checkpoint's discriminator as fp16 safetensors; ``meta`` must name its ``condition``
    (a critic of one condition cannot judge another's pairs). Returns its sha256."""
    if "condition" not in meta:
        raise ValueError("export_discriminator: meta must name the condition the discriminator was trained on")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    return _write(state["D"], out, {**meta, "step": int(state["step"])})


def read_weights(path: str | Path) -> tuple[dict, dict]:
    """An exported network's weights as fp32 and the metadata stored in the file, in one read."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k).float() for k in f.keys()}, f.metadata() or {}


def load_discriminator(path: str | Path, condition: str) -> tuple[dict, dict]:
    """An exported discriminator's fp32 weights and metadata; refuses one of another condition."""
    weights, meta = read_weights(path)
    if meta.get("condition") != condition:
        raise ValueError(f"{path}: a discriminator for condition {meta.get('condition')!r}, "
                         f"this run trains {condition!r}")
    return weights, meta
