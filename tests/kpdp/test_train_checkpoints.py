"""Training checkpoints: the exported discriminator carries a chunk's critic to the next machine."""
import numpy as np
import pytest
import torch

from kpdp.generator import PatchDiscriminator
from kpdp.inpaint import ASSETS, load_generator
from kpdp.train import Batches, TrainConfig, train
from kpdp.train_checkpoints import export_discriminator, export_generator, load_discriminator


def test_a_chunk_resumes_from_the_exported_discriminator(tmp_path, sample_crops):
    first = TrainConfig(data=str(sample_crops), out=str(tmp_path / "a"), steps=1, batch=2, base=8, seed=1)
    ckpt = train(first, log=lambda *_: None)
    sha = export_discriminator(ckpt, tmp_path / "d.safetensors", {"condition": "dense68", "pairs_with": "test"})
    assert len(sha) == 64 and (tmp_path / "d.json").exists()
    export_generator(ckpt, tmp_path / "g.safetensors", {"condition": "dense68"})
    logs = []
    # lr 0: the second chunk's D is the exported one, to fp16 rounding
    second = TrainConfig(data=str(sample_crops), out=str(tmp_path / "b"), steps=1, batch=2, base=8, seed=2, lr=0.0,
                         init_from=str(tmp_path / "g.safetensors"), init_discriminator=str(tmp_path / "d.safetensors"))
    ckpt2 = train(second, log=logs.append)
    assert any("discriminator initialised from" in m for m in logs)
    d1 = torch.load(ckpt, weights_only=True)["D"]
    d2 = torch.load(ckpt2, weights_only=True)["D"]
    assert d1.keys() == d2.keys()
    weights = [k for k in d1 if not k.endswith(("_u", "_v"))]  # spectral norm's power iteration moves u, v
    assert len(weights) >= 8
    for k in weights:
        assert torch.equal(d2[k], d1[k].half().float()), k
    fresh = TrainConfig(data=str(sample_crops), out=str(tmp_path / "c"), steps=1, batch=2, base=8, seed=2, lr=0.0)
    d3 = torch.load(train(fresh, log=logs.append), weights_only=True)["D"]
    assert not all(torch.equal(d3[k], d2[k]) for k in weights)  # without it: a new critic
    assert any("discriminator from scratch" in m for m in logs)


def test_a_discriminator_of_another_condition_is_refused(tmp_path, sample_crops):
    ckpt = train(TrainConfig(data=str(sample_crops), out=str(tmp_path / "a"), steps=1, batch=2, base=8),
                 log=lambda *_: None)
    export_discriminator(ckpt, tmp_path / "d.safetensors", {"condition": "dense68"})
    with pytest.raises(ValueError, match="'dense68'.*'sparse7'"):
        load_discriminator(tmp_path / "d.safetensors", "sparse7")
    with pytest.raises(ValueError, match="condition"):
        export_discriminator(ckpt, tmp_path / "e.safetensors", {})


def _real_minus_fake(D, G, batch):
    img, mask, cond, cond_own = batch[:4]
    with torch.no_grad():
        fake = G(img, mask, cond)
        real = torch.stack([o[-1].mean((1, 2, 3)) for o in D(img, cond_own, mask)]).mean(0)
        drawn = torch.stack([o[-1].mean((1, 2, 3)) for o in D(fake, cond, mask)]).mean(0)
    return (real - drawn).numpy()


def test_the_shipped_discriminator_tells_the_shipped_v3_faces_from_real_ones(sample_crops):
    """The committed critic is worth resuming from: on crops it never trained on (the LFW sample, not
    devtrain) it scores the real face above the shipped generator's drawing of it for most images (12 of 16),
    where a new discriminator is a coin toss (chunk 8's 128 devtrain crops: 81 % against 38 %)."""
    G, _ = load_generator("sparse7+dense68")
    G = G.float().eval()
    cfg = TrainConfig(data=str(sample_crops), out="", condition="sparse7+dense68", mask="ellipse", batch=16, seed=3)
    batch = Batches(cfg.data, cfg, torch.Generator().manual_seed(3)).sample()
    shipped = PatchDiscriminator("sparse7+dense68").eval()
    shipped.load_state_dict(load_discriminator(ASSETS / "discriminator_kpdp_v3.safetensors", "sparse7+dense68")[0])
    margin = _real_minus_fake(shipped, G, batch)
    torch.manual_seed(0)
    new = _real_minus_fake(PatchDiscriminator("sparse7+dense68").eval(), G, batch)
    assert np.mean(margin > 0) >= 0.625 and margin.mean() > 0, margin  # 12 of 16 when written
    assert np.mean(margin > 0) > np.mean(new > 0)
