import pytest
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
    for cond in ("dense68", "sparse7", "sparse7+dense68"):  # kpdp v2, deepprivacy, kpdp v3 (in training)
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
    img, mask, cond, cond_own, foreign, target = data.sample()
    assert 0 < int(foreign.sum()) < 8
    assert torch.equal(render_condition(target, 128, cfg.condition), cond)  # the geometry each row was asked for
    differs = (cond - cond_own).abs().flatten(1).amax(1) > 0.5
    assert torch.equal(differs, foreign)  # foreign rows, and only they, draw another geometry
    ellipses = {float(m.sum()) for m in mask}
    assert ellipses <= {float(geo.ellipse_mask((128, 128), s).sum()) for s in geo.ELLIPSE_SCALES}
    train(cfg, log=lambda *_: None)  # one step with the identity term (torch FaceNet) runs
    header, row = (tmp_path / "v2" / "losses.csv").read_text().splitlines()[:2]
    columns = dict(zip(header.split(","), row.split(",")))
    assert "g_id" in columns and float(columns["id_sim"]) != 0  # the identity term saw the foreign samples


def test_v3_grows_the_deepprivacy_network_into_both_conditions_exactly():
    """sparse7+dense68 starts as the shipped DeepPrivacy-style generator: the new channels' weights
    are zero, so its output equals the old network's to float rounding."""
    from safetensors.torch import load_file

    from kpdp.generator import grow_condition
    from kpdp.inpaint import WEIGHTS

    old = {k: v.float() for k, v in load_file(str(WEIGHTS["sparse7"])).items()}
    g7, g16 = Generator("sparse7").eval(), Generator("sparse7+dense68").eval()
    g7.load_state_dict(old)
    g16.load_state_dict(grow_condition(old, "sparse7", "sparse7+dense68"))
    torch.manual_seed(0)
    x, lm, noise = torch.rand(2, 3, 128, 128) * 2 - 1, torch.rand(2, 68, 2) * 60 + 30, torch.randn(2, 1, 128, 128)
    m = torch.zeros(2, 1, 128, 128)
    m[:, :, 30:100, 30:100] = 1
    with torch.no_grad():
        a = g7(x, m, render_condition(lm, 128, "sparse7"), noise)
        b = g16(x, m, render_condition(lm, 128, "sparse7+dense68"), noise)
        assert (a - b).abs().max() < 1e-4
        g16.stem[0].weight[:, 4 + 7] += 1.0  # a dense channel that is not zero changes the output
        assert (g7(x, m, render_condition(lm, 128, "sparse7"), noise)
                - g16(x, m, render_condition(lm, 128, "sparse7+dense68"), noise)).abs().max() > 1e-2


def test_balanced_sampling_draws_each_gender_half_the_time(tmp_path, sample, sample_landmarks):
    import numpy as np

    from kpdp.train import Batches
    from scripts.gender_weights import balanced

    arrays = {k: sample_landmarks[k][:8] for k in ("image_id", "identity", "landmarks")}
    train_data.pack(arrays, {s.image_id: s.path for s in sample}, tmp_path / "crops.npz")
    is_male = np.array([True] * 6 + [False] * 2)
    ids = train_data.load(tmp_path / "crops.npz")["image_id"]
    np.savez(tmp_path / "balance.npz", image_id=ids, weight=balanced(is_male))
    cfg = TrainConfig(data=str(tmp_path / "crops.npz"), out=str(tmp_path / "b"), batch=4000, base=8,
                      balance=str(tmp_path / "balance.npz"))
    data = Batches(cfg.data, cfg, torch.Generator().manual_seed(0))
    drawn = torch.multinomial(data.weights, 4000, replacement=True, generator=torch.Generator().manual_seed(1))
    women = (drawn >= 6).float().mean().item()
    assert abs(women - 0.5) < 0.03  # 2 of 8 images, half of the draws
    np.savez(tmp_path / "partial.npz", image_id=ids[:7], weight=np.ones(7))
    import pytest

    with pytest.raises(ValueError, match="no weight for 1 training images"):
        Batches(cfg.data, TrainConfig(**{**cfg.__dict__, "balance": str(tmp_path / "partial.npz")}),
                torch.Generator())


def test_a_resumed_chunk_takes_its_own_rates_and_bf16_on_the_cpu_logs_the_tone_term(tmp_path, sample, sample_landmarks):
    arrays = {k: sample_landmarks[k][:8] for k in ("image_id", "identity", "landmarks")}
    train_data.pack(arrays, {s.image_id: s.path for s in sample}, tmp_path / "crops.npz")
    cfg = TrainConfig(data=str(tmp_path / "crops.npz"), out=str(tmp_path / "a"), steps=1, batch=4, base=8,
                      mask="ellipse", foreign_p=0.5, lr=1e-4)
    train(cfg, log=lambda *_: None)
    chunk = tmp_path / "b"  # the next chunk in a new folder, from the first one's checkpoint
    chunk.mkdir()
    (chunk / "last.pt").write_bytes((tmp_path / "a" / "last.pt").read_bytes())
    cfg2 = TrainConfig(**{**vars(cfg), "out": str(chunk), "steps": 2, "g_lr": 2e-5, "precision": "bf16",
                          "tone_weight": 5.0})
    train(cfg2, log=lambda *_: None)
    state = torch.load(chunk / "last.pt", weights_only=True)
    assert [g["lr"] for g in state["opt_g"]["param_groups"]] == [2e-5]
    assert [g["lr"] for g in state["opt_d"]["param_groups"]] == [1e-4]
    header, row = (chunk / "losses.csv").read_text().splitlines()[:2]
    assert float(dict(zip(header.split(","), row.split(",")))["g_tone"]) > 0  # the foreign samples kept their tone


def test_tone_match_sees_a_lighter_face_and_not_a_reshaped_one():
    from kpdp.train import tone_match

    real = torch.rand(2, 3, 64, 64) * 0.2 - 0.5
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 8:56, 8:56] = 1
    lighter = real + 0.3
    reshaped = real.roll(3, dims=-1)  # the same colours 3 px over: another geometry, the same tone
    assert float(tone_match(lighter, real, mask)) > 0.25
    assert float(tone_match(reshaped, real, mask)) < 0.02


def test_the_discriminator_warm_up_trains_d_alone_then_g(tmp_path, sample, sample_landmarks):
    arrays = {k: sample_landmarks[k][:8] for k in ("image_id", "identity", "landmarks")}
    train_data.pack(arrays, {s.image_id: s.path for s in sample}, tmp_path / "crops.npz")
    cfg = TrainConfig(data=str(tmp_path / "crops.npz"), out=str(tmp_path / "w"), steps=1, batch=2, base=8,
                      d_warmup=1, ckpt_every=1)
    torch.manual_seed(cfg.seed)  # what train() builds first, from the same seed
    G0 = Generator(cfg.condition, cfg.base).state_dict()
    D0 = PatchDiscriminator(cfg.condition).state_dict()
    train(cfg, log=lambda *_: None)
    state = torch.load(tmp_path / "w" / "last.pt", weights_only=True)
    assert all(torch.equal(state["G"][k], v) for k, v in G0.items())  # warm-up: G untouched
    assert any(not torch.equal(state["D"][k], v) for k, v in D0.items() if v.is_floating_point())  # D learned
    cfg.steps = 2
    train(cfg, log=lambda *_: None)
    state = torch.load(tmp_path / "w" / "last.pt", weights_only=True)
    assert any(not torch.equal(state["G"][k], v) for k, v in G0.items() if v.is_floating_point())


def test_geometry_term_pulls_the_drawn_face_towards_its_condition(tmp_path, sample, sample_landmarks):
    """The term is small for a real crop under its own landmarks and grows when the geometry it is
    asked for moves (the mouth 6 px down); one training step with it logs it. Needs the shipped
    landmark network for the first part (kpdp.landmark_net)."""
    from safetensors.torch import save_file

    from kpdp import landmark_net
    from kpdp.train import Batches, GeometryConsistency

    arrays = {k: sample_landmarks[k][:8] for k in ("image_id", "identity", "landmarks")}
    train_data.pack(arrays, {s.image_id: s.path for s in sample}, tmp_path / "crops.npz")
    tiny = tmp_path / "lm.safetensors"
    save_file(landmark_net.LandmarkNet(width=8).state_dict(), str(tiny))
    (tmp_path / "lm.json").write_text('{"width": 8}')
    cfg = TrainConfig(data=str(tmp_path / "crops.npz"), out=str(tmp_path / "geo"), steps=1, batch=4, base=8,
                      mask="ellipse", foreign_p=0.5, geometry_weight=1.0, geometry_net=str(tiny))
    train(cfg, log=lambda *_: None)
    header, row = (tmp_path / "geo" / "losses.csv").read_text().splitlines()[:2]
    assert float(dict(zip(header.split(","), row.split(",")))["g_geo"]) > 0
    if not landmark_net.ASSET.is_file():
        pytest.skip("no shipped landmark network (python -m kpdp train-landmarks)")
    data = Batches(cfg.data, TrainConfig(data=cfg.data, out=str(tmp_path), batch=8), torch.Generator().manual_seed(0))
    img, lm = data.images[:8].float() / 127.5 - 1, data.lm[:8]
    term = GeometryConsistency("cpu")
    moved = lm.clone()
    moved[:, 48:68, 1] += 6
    with torch.no_grad():
        own, other = float(term(img, lm)), float(term(img, moved))
    assert own < 0.08 and other > own + 0.03, (own, other)


def test_diversity_term_teaches_the_generator_to_use_its_noise(tmp_path, sample, sample_landmarks):
    """Two draws of one masked face with other noise: the term (FaceNet similarity of the draws above
    a margin) is what makes them differ. Steps on it alone make the draws of a tiny generator
    further apart in pixels; one training step with it logs it."""
    from kpdp.train import IdentityDistance, draw_similarity

    torch.manual_seed(0)
    g = Generator("dense68", base=8)
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    m = torch.zeros(2, 1, 128, 128)
    m[:, :, 30:100, 30:100] = 1
    c = render_condition(torch.rand(2, 68, 2) * 60 + 30, 128, "dense68")
    n1, n2 = torch.randn(2, 1, 128, 128), torch.randn(2, 1, 128, 128)

    def apart():
        with torch.no_grad():
            return float((g(x, m, c, n1) - g(x, m, c, n2)).abs().sum() / (m.sum() * 3))

    identity = IdentityDistance("cpu", margin=0.3)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    before = apart()
    for _ in range(5):
        loss, _ = draw_similarity(identity, g(x, m, c, n1), g(x, m, c, n2), margin=-1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert apart() > 1.2 * before, (before, apart())  # 0.163 -> 0.216 here

    arrays = {k: sample_landmarks[k][:8] for k in ("image_id", "identity", "landmarks")}
    train_data.pack(arrays, {s.image_id: s.path for s in sample}, tmp_path / "crops.npz")
    cfg = TrainConfig(data=str(tmp_path / "crops.npz"), out=str(tmp_path / "div"), steps=1, batch=4, base=8,
                      mask="ellipse", foreign_p=1.0, diversity_weight=1.0)
    train(cfg, log=lambda *_: None)
    header, row = (tmp_path / "div" / "losses.csv").read_text().splitlines()[:2]
    logged = dict(zip(header.split(","), row.split(",")))
    assert 0 < float(logged["div_sim"]) <= 1 and float(logged["g_div"]) >= 0
