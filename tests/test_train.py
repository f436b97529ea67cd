import torch

from kpdp import train_data
from kpdp.generator import FLIP_68, Generator, PatchDiscriminator, render_condition
from kpdp.inpaint import load_generator
from kpdp.train import TrainConfig, train


def test_condition_maps_and_networks():
    lm = torch.rand(2, 68, 2) * 60 + 30
    for kind, ch in (("dense68", 9), ("sparse7", 7)):
        c = render_condition(lm, 128, kind)
        assert c.shape == (2, ch, 128, 128) and 0.9 < c.max() <= 1
        g = Generator(kind, base=8)
        x, m = torch.rand(2, 3, 128, 128) * 2 - 1, torch.zeros(2, 1, 128, 128)
        m[:, :, 40:90, 40:90] = 1
        y = g(x, m, c)
        assert torch.equal(y[m.expand_as(y) == 0], x[m.expand_as(x) == 0])  # outside the mask: the input
        assert [f[-1].shape[1] for f in PatchDiscriminator(kind, base=8)(y, c, m)] == [1, 1]
    assert sorted(FLIP_68) == list(range(68))


def test_training_resumes_from_its_checkpoint(tmp_path, sample, sample_landmarks):
    arrays = {"image_id": sample_landmarks["image_id"][:16], "identity": sample_landmarks["identity"][:16],
              "landmarks": sample_landmarks["landmarks"][:16]}
    paths = {s.image_id: s.path for s in sample}
    info = train_data.pack(arrays, paths, tmp_path / "crops.npz")
    assert info["n"] == 16
    cfg = TrainConfig(data=str(tmp_path / "crops.npz"), out=str(tmp_path / "g"), steps=2, batch=2, base=8,
                      ckpt_every=1, sample_every=1)
    train(cfg, log=lambda *_: None)
    cfg.steps = 3
    logs = []
    train(cfg, log=logs.append)
    assert any("resumed" in m and "step 2" in m for m in logs)
    state = torch.load(tmp_path / "g" / "last.pt", weights_only=True)
    assert int(state["step"]) == 3 and (tmp_path / "g" / "samples_000003.png").exists()
    assert (tmp_path / "g" / "losses.csv").read_text().startswith("step,d_loss")


def test_shipped_generators_load_without_pickle():
    for cond in ("dense68", "sparse7"):
        g, meta = load_generator(cond)
        assert meta["condition"] == cond and len(meta["sha256"]) == 64 and int(meta["step"]) + int(meta.get("init_steps", 0)) > 1000
        assert sum(p.numel() for p in g.parameters()) > 1e6


def test_fine_tuning_starts_from_exported_weights_with_larger_drawn_masks(tmp_path, sample, sample_landmarks):
    from safetensors.torch import save_file

    from kpdp.train import Batches

    arrays = {k: sample_landmarks[k][:8] for k in ("image_id", "identity", "landmarks")}
    train_data.pack(arrays, {s.image_id: s.path for s in sample}, tmp_path / "crops.npz")
    init = Generator("dense68", base=8)
    save_file({k: v.contiguous() for k, v in init.state_dict().items()}, str(tmp_path / "init.safetensors"))
    cfg = TrainConfig(data=str(tmp_path / "crops.npz"), out=str(tmp_path / "ft"), steps=1, batch=4, base=8,
                      lr=0.0, mask_dilate=(0.25, 0.3), mask_forehead=(0.4, 0.5),
                      init_from=str(tmp_path / "init.safetensors"))
    logs = []
    train(cfg, log=logs.append)
    assert any("initialised from" in m for m in logs)
    state = torch.load(tmp_path / "ft" / "last.pt", weights_only=True)
    assert all(torch.equal(state["G"][k], v) for k, v in init.state_dict().items())  # lr 0: unchanged
    data = Batches(cfg.data, cfg, torch.Generator().manual_seed(0))
    packed = float(data.masks[:4].float().mean())
    _, drawn, *_ = data.sample()
    assert drawn.mean() > 1.3 * packed  # the drawn masks reach the hairline and past the cheeks


def test_v2_training_conditions_half_the_batch_on_kpdp_releases_under_ellipse_masks(tmp_path, sample, sample_landmarks):
    from kpdp.faces import geometry as geo
    from kpdp.train import Batches

    arrays = {k: sample_landmarks[k][:8] for k in ("image_id", "identity", "landmarks")}
    train_data.pack(arrays, {s.image_id: s.path for s in sample}, tmp_path / "crops.npz")
    cfg = TrainConfig(data=str(tmp_path / "crops.npz"), out=str(tmp_path / "v2"), steps=1, batch=8, base=8,
                      mask="ellipse", foreign_p=0.5, id_weight=1.0)
    data = Batches(cfg.data, cfg, torch.Generator().manual_seed(0))
    img, mask, cond, cond_own, foreign = data.sample()
    assert 0 < int(foreign.sum()) < 8
    differs = (cond - cond_own).abs().flatten(1).amax(1) > 0.5
    assert torch.equal(differs, foreign)  # foreign rows, and only they, draw another geometry
    ellipses = {float(m.sum()) for m in mask}
    assert ellipses <= {float(geo.ellipse_mask((128, 128), s).sum()) for s in geo.ELLIPSE_SCALES}
    train(cfg, log=lambda *_: None)  # one step with the identity term (torch FaceNet) runs
    header, row = (tmp_path / "v2" / "losses.csv").read_text().splitlines()[:2]
    assert header.endswith("g_id,id_sim")
    assert float(row.split(",")[-1]) != 0  # the identity term saw the foreign samples
