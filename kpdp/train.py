"""Self-supervised training of the generator (spec section 4): the condition is the face's own
landmarks and the target is the face itself; at anonymisation time the condition is replaced by
the privatised landmarks. Resumable: every checkpoint holds models, optimisers, EMA, step and RNG.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from kpdp.faces.facenet_torch import load_facenet_casia_torch, standardise

from . import landmark_net, train_data
from .faces import geometry as geo
from .generator import FLIP_68, Generator, PatchDiscriminator, box_masks, grow_condition, render_condition
from .train_checkpoints import load_discriminator, read_weights, save_checkpoint
from .train_targets import EllipseMasks, foreign_targets


@dataclass
class TrainConfig:
    data: str
    out: str
    condition: str = "dense68"  # "sparse7" trains the DeepPrivacy-style baseline
    mask: str = "landmarks"  # "box" for the DeepPrivacy-style baseline
    steps: int = 20000
    batch: int = 32
    lr: float = 2e-4
    base: int = 32
    l1_weight: float = 10.0
    fm_weight: float = 10.0
    ema: float = 0.999
    seed: int = 0
    device: str = "cpu"
    minutes: float = 0.0  # stop (with a checkpoint) after this wall time; 0 = no limit
    ckpt_every: int = 1000
    sample_every: int = 1000
    # landmark masks drawn per sample with dilation / forehead lift uniform in these ranges (see
    # kpdp.faces.geometry.landmark_mask); (0, 0) keeps the packed masks with a small random dilation
    mask_dilate: tuple[float, float] = (0.0, 0.0)
    mask_forehead: tuple[float, float] = (0.10, 0.10)
    init_from: str = ""  # exported generator (.safetensors) to start G from, e.g. to fine-tune on larger masks
    # exported discriminator (kpdp.train_checkpoints.export_discriminator) to start D from: the next
    # chunk on another machine keeps the critic of the last one; "" = D from scratch
    init_discriminator: str = ""
    # KPDP v2 (kpdp.train_targets): this fraction of each batch is conditioned on a KPDP release of
    # the face's geometry (no reconstruction loss there); ``mask="ellipse"`` draws the smooth masks
    foreign_p: float = 0.0
    id_weight: float = 0.0  # identity-distance term on foreign samples (torch FaceNet), 0 = off
    id_margin: float = 0.3  # cosine similarity to the source above which it is penalised
    # KPDP v3: steps at the start (and after init_from) in which only the discriminator learns, so
    # that a new D does not push a G that already draws faces with the gradients of a random critic
    d_warmup: int = 0
    balance: str = ""  # .npz of per-image sampling weights (image_id, weight), e.g. gender-balanced
    # KPDP v3 chunk 4: a fine-tuned G under a fresh D collapsed at lr 1e-4 (step 446), so G may learn
    # slower than D (two time-scale rule); 0 = ``lr``. Also applied on resume, over the optimiser's own
    g_lr: float = 0.0
    # "auto": bf16 autocast on CUDA only; "bf16" also on CPUs with bf16 units (Zen 4: 1.9x per step
    # on 2 cores, the weights and Adam's state stay fp32); "fp32": no autocast anywhere
    precision: str = "auto"
    # foreign samples: L1 between the mask-weighted mean colours of fake and source in a 4 x 4 grid
    # of the crop. The drawn face keeps the skin tone and lighting of the person it replaces (both v3
    # checkpoints and v2 drew dark-skinned faces lighter); the context outside the mask shows them
    # anyway, and a 32 px cell mean carries no face shape. 0 = off
    tone_weight: float = 0.0
    # every sample: the drawn face's landmarks (kpdp.landmark_net, trained on dlib's, used only here)
    # against the geometry it was asked to draw, mean point error over the interocular distance. With
    # the original geometry v3 kept expression 0.325 where the DeepPrivacy-style generator keeps
    # 0.555: it does not draw the mouth the condition draws. 0 = off
    geometry_weight: float = 0.0
    geometry_net: str = ""  # landmark network weights; "" = the shipped kpdp/assets/landmark_net.safetensors
    # foreign samples: a second draw with other noise, and the torch-FaceNet cosine similarity of the
    # two draws above ``diversity_margin`` penalised (an identity-space mode-seeking term, after Mao et
    # al., CVPR 2019). v3 step 2452 ignores its noise input (two draws of one geometry differ by 1.4-2.1
    # grey levels on average), so two releases of one photo are nearly the same face: same-photo
    # linkage 0.72 on LFW devtest against v2's 0.15. 0 = off (one generator pass per step fewer)
    diversity_weight: float = 0.0
    diversity_margin: float = 0.5


class Batches:
    """All crops on the device; flips and mask dilation done there, seeded."""

    def __init__(self, path: str, cfg: TrainConfig, gen: torch.Generator):
        d = train_data.load(Path(path))
        dev = torch.device(cfg.device)
        self.images = torch.from_numpy(d["images"]).permute(0, 3, 1, 2).contiguous().to(dev)
        self.lm = torch.from_numpy(d["landmarks"]).float().to(dev)
        self.masks = torch.from_numpy(d["masks"]).to(dev)
        self.size, self.cfg, self.gen, self.n = d["size"], cfg, gen, len(d["images"])
        self.weights = sampling_weights(cfg.balance, d["image_id"]) if cfg.balance else None
        self.flip = torch.tensor(FLIP_68, device=dev)
        self.np_rng = np.random.default_rng(cfg.seed + 1)  # foreign geometries and mask scales
        if cfg.mask == "ellipse":

            self.ellipses = EllipseMasks(self.size, dev)

    def sample(self):
        cfg, dev = self.cfg, self.images.device
        if self.weights is None:
            idx = torch.randint(0, self.n, (cfg.batch,), generator=self.gen, device="cpu").to(dev)
        else:
            idx = torch.multinomial(self.weights, cfg.batch, replacement=True, generator=self.gen).to(dev)
        img = self.images[idx].float() / 127.5 - 1
        lm = self.lm[idx].clone()
        mask = self.masks[idx].float()[:, None]
        flip = (torch.rand(cfg.batch, generator=self.gen) < 0.5).to(dev)
        img = torch.where(flip[:, None, None, None], img.flip(-1), img)
        mask = torch.where(flip[:, None, None, None], mask.flip(-1), mask)
        lm_f = lm[:, self.flip].clone()
        lm_f[..., 0] = self.size - lm_f[..., 0]
        lm = torch.where(flip[:, None, None], lm_f, lm)
        foreign = np.zeros(cfg.batch, bool)
        if cfg.foreign_p > 0:

            foreign = self.np_rng.random(cfg.batch) < cfg.foreign_p
            target = torch.from_numpy(foreign_targets(lm.cpu().numpy(), foreign, self.np_rng)).float().to(dev)
        else:
            target = lm
        if cfg.mask == "ellipse":
            mask = self.ellipses(lm.cpu().numpy(), target.cpu().numpy(), self.np_rng)
        elif cfg.mask == "box":
            mask = box_masks(lm, self.size)
        elif cfg.mask_dilate[1] > 0:  # larger masks hide more of what identifies a face (hairline, cheeks)
            mask = self.drawn_masks(lm)
        else:  # random extra dilation: at anonymisation time the mask is the union of two faces' masks
            k = int(torch.randint(0, 4, (1,), generator=self.gen)) * 2 + 1
            mask = F.max_pool2d(mask, k, stride=1, padding=k // 2)
        cond_own = render_condition(lm, self.size, cfg.condition)
        cond = render_condition(target, self.size, cfg.condition) if foreign.any() else cond_own
        return img, mask, cond, cond_own, torch.from_numpy(foreign).to(dev), target

    def drawn_masks(self, lm: torch.Tensor) -> torch.Tensor:
        (d0, d1), (f0, f1) = self.cfg.mask_dilate, self.cfg.mask_forehead
        u = torch.rand(len(lm), 2, generator=self.gen).numpy()
        masks = [geo.landmark_mask(p, (self.size, self.size), dilate=d0 + (d1 - d0) * a, forehead=f0 + (f1 - f0) * b)
                 for p, (a, b) in zip(lm.cpu().numpy(), u)]
        return torch.from_numpy(np.stack(masks)).float()[:, None].to(lm.device)


def sampling_weights(path: str, image_ids) -> torch.Tensor:
    """Per-image sampling weights in the order of ``image_ids``; an image the file does not list
    is refused (a silently unweighted image would undo the balance)."""
    with np.load(path, allow_pickle=False) as z:
        by_id = dict(zip(z["image_id"].tolist(), z["weight"].tolist()))
    missing = [i for i in image_ids.tolist() if i not in by_id]
    if missing:
        raise ValueError(f"{path} has no weight for {len(missing)} training images (e.g. {missing[0]})")
    return torch.tensor([by_id[i] for i in image_ids.tolist()], dtype=torch.float64)


def hinge_d(real, fake):
    return sum(F.relu(1 - r[-1]).mean() for r in real) + hinge_fake(fake)


def hinge_fake(outs):
    return sum(F.relu(1 + o[-1]).mean() for o in outs)


def tone_match(fake, real, mask, cells: int = 4):
    """L1 between the mask-weighted mean colour of ``fake`` and ``real`` in a ``cells`` x ``cells``
    grid, over the cells that the mask covers at least a quarter of.

    >>> real = torch.zeros(1, 3, 8, 8); mask = torch.ones(1, 1, 8, 8)
    >>> round(float(tone_match(real + 0.5, real, mask)), 3)  # one level of difference everywhere
    0.5
    """
    m = F.adaptive_avg_pool2d(mask, cells)
    mean_fake = F.adaptive_avg_pool2d(fake * mask, cells) / (m + 1e-6)
    mean_real = F.adaptive_avg_pool2d(real * mask, cells) / (m + 1e-6)
    w = (m > 0.25).float().expand_as(mean_fake)
    return ((mean_fake - mean_real).abs() * w).sum() / w.sum().clamp(min=1)


def autocast_args(cfg: TrainConfig, dev: torch.device) -> dict:
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {cfg.precision!r}")
    on = cfg.precision == "bf16" or (cfg.precision == "auto" and dev.type == "cuda")
    return dict(device_type=dev.type, dtype=torch.bfloat16, enabled=on)


def feature_matching(real, fake, keep=None):
    """L1 between the discriminator's features of real and fake, on the samples ``keep`` (all if None)."""
    pick = (lambda t: t) if keep is None else (lambda t: t[keep])
    return sum(F.l1_loss(pick(f), pick(r).detach()) for rs, fs in zip(real, fake) for r, f in zip(rs[:-1], fs[:-1]))


class GeometryConsistency:
    """How far the drawn face's landmarks (the frozen :mod:`kpdp.landmark_net`) lie from the
    geometry it was conditioned on: mean point distance over the target's interocular distance."""

    def __init__(self, device, path: str = ""):
        self.net = landmark_net.load(path or None).to(device)

    def __call__(self, fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        err = (self.net(fake.float()) - target).norm(dim=-1).mean(-1)
        return (err / landmark_net.interocular(target).clamp(min=1.0)).mean()


class IdentityDistance:
    """Penalises a generated face for staying close to its source identity: the cosine similarity
    of torch-FaceNet (CASIA) embeddings above ``margin``. The 128 px aligned crops are resized to
    FaceNet's 160 px; FaceNet stays frozen, in eval mode."""

    def __init__(self, device, margin: float):
        self.net, self.standardise = load_facenet_casia_torch(str(device)), standardise
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.margin = margin

    def embed(self, x):  # x in [-1, 1], (B, 3, 128, 128)
        x = F.interpolate(x, size=(160, 160), mode="bilinear", align_corners=False)
        return self.net(self.standardise((x + 1) * 127.5))

    def __call__(self, fake, real):
        with torch.no_grad():
            ref = self.embed(real)
        sim = (self.embed(fake) * ref).sum(-1)
        return F.relu(sim - self.margin).mean(), sim.detach().mean()


def train(cfg: TrainConfig, log=print) -> Path:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = torch.device(cfg.device)
    G = Generator(cfg.condition, cfg.base).to(dev)
    D = PatchDiscriminator(cfg.condition).to(dev)
    G_ema = Generator(cfg.condition, cfg.base).to(dev).eval()
    G_ema.load_state_dict(G.state_dict())
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.g_lr or cfg.lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
    step = 0
    ckpt = out / "last.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=dev, weights_only=True)
        G.load_state_dict(state["G"]), D.load_state_dict(state["D"]), G_ema.load_state_dict(state["G_ema"])
        opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
        for opt, lr in ((opt_g, cfg.g_lr or cfg.lr), (opt_d, cfg.lr)):  # this chunk's rates, not the saved ones
            for group in opt.param_groups:
                group["lr"] = lr
        step = int(state["step"])
        gen.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        log(f"resumed from {ckpt} at step {step}")
    else:
        if cfg.init_from:
            init, init_meta = read_weights(cfg.init_from)
            init_condition = init_meta.get("condition", cfg.condition)
            if init_condition != cfg.condition:
                init = grow_condition(init, init_condition, cfg.condition)
            G.load_state_dict(init), G_ema.load_state_dict(init)
            log(f"generator initialised from {cfg.init_from} ({init_condition}"
                + (f", grown to {cfg.condition} with zero weights on the new channels"
                   if init_condition != cfg.condition else "") + ")")
        if cfg.init_discriminator:
            d_init, d_meta = load_discriminator(cfg.init_discriminator, cfg.condition)
            D.load_state_dict(d_init)
            log(f"discriminator initialised from {cfg.init_discriminator} (step {d_meta.get('step', '?')})")
        else:
            log("discriminator from scratch")
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    data = Batches(cfg.data, cfg, gen)
    fixed = data.sample()
    amp = autocast_args(cfg, dev)
    losses = out / "losses.csv"
    new_log = not losses.exists() or losses.stat().st_size == 0  # a resumed chunk in a new folder gets one too
    log_f = open(losses, "a", newline="")
    writer = csv.writer(log_f)
    if new_log:
        writer.writerow(["step", "d_loss", "g_adv", "g_l1", "g_fm", "sec_per_step", "g_id", "id_sim", "g_tone",
                         "g_geo", "g_div", "div_sim"])
    identity = IdentityDistance(dev, cfg.id_margin) if cfg.id_weight > 0 or cfg.diversity_weight > 0 else None
    geometry = GeometryConsistency(dev, cfg.geometry_net) if cfg.geometry_weight > 0 else None
    g_adv = g_l1 = g_fm = g_id = id_sim = g_tone = g_geo = g_div = div_sim = torch.zeros(())
    t0, t_last, s_last = time.time(), time.time(), step
    from tqdm import tqdm
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.condition}", mininterval=10)
    while step < cfg.steps:
        img, mask, cond, cond_own, foreign, target = data.sample()
        train_g = step >= cfg.d_warmup  # during the warm-up only the discriminator learns
        with torch.autocast(**amp):
            noise = torch.randn_like(mask)  # drawn here, as G would draw it, for the diversity term's pair
            with torch.set_grad_enabled(train_g):  # no generator graph in the warm-up; D's always
                fake = G(img, mask, cond, noise)
            # real pairs always carry their own geometry; a real face under a foreign geometry is
            # a fake pair: the discriminator learns landmark consistency (no 68-point network is
            # differentiable offline here: face-alignment's FAN downloads its weights)
            d_loss = hinge_d(D(img, cond_own, mask), D(fake.detach(), cond, mask))
            if foreign.any():
                f = foreign
                d_loss = d_loss + hinge_fake(D(img[f], cond[f], mask[f]))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        if train_g:  # after the warm-up: a discriminator worth learning from
            g_adv, g_l1, g_fm, g_id, id_sim, g_tone, g_geo, g_div, div_sim = generator_step(
                cfg, G, G_ema, D, opt_g, identity, img, mask, cond, cond_own, fake, foreign, amp,
                geometry=geometry, target=target, noise=noise)
        step += 1
        bar.update(1)
        if step % 50 == 0 or step == cfg.steps:
            sps = (time.time() - t_last) / max(step - s_last, 1)
            t_last, s_last = time.time(), step
            writer.writerow([step, f"{d_loss.item():.4f}", f"{g_adv.item():.4f}", f"{g_l1.item():.4f}",
                             f"{g_fm.item():.4f}", f"{sps:.4f}", f"{g_id.item():.4f}", f"{id_sim.item():.4f}",
                             f"{g_tone.item():.4f}", f"{g_geo.item():.4f}", f"{g_div.item():.4f}",
                             f"{div_sim.item():.4f}"])
            log_f.flush()
        out_of_time = cfg.minutes and (time.time() - t0) > cfg.minutes * 60
        if step % cfg.sample_every == 0 or step == cfg.steps or out_of_time:
            save_grid(G_ema, fixed, out / f"samples_{step:06d}.png")
        if step % cfg.ckpt_every == 0 or step == cfg.steps or out_of_time:
            save_checkpoint(ckpt, G, D, G_ema, opt_g, opt_d, step, gen)
        if out_of_time:
            log(f"time budget of {cfg.minutes} min reached at step {step}")
            break
    bar.close()
    log_f.close()
    return ckpt


def draw_similarity(identity: IdentityDistance, a: torch.Tensor, b: torch.Tensor, margin: float):
    """(penalty, mean similarity) of two draws of the same faces: their FaceNet cosine similarity
    above ``margin``, with gradients through both."""
    sim = (identity.embed(a) * identity.embed(b)).sum(-1)
    return F.relu(sim - margin).mean(), sim.detach().mean()


def generator_step(cfg, G, G_ema, D, opt_g, identity, img, mask, cond, cond_own, fake, foreign, amp,
                   geometry=None, target=None, noise=None):
    """One generator update (and its EMA); returns the loss terms for the log."""
    own = ~foreign
    g_id = id_sim = g_tone = g_geo = g_div = div_sim = torch.zeros(())
    with torch.autocast(**amp):
        real_f, fake_f = D(img, cond_own, mask), D(fake, cond, mask)
        g_adv = -sum(f[-1].mean() for f in fake_f)
        # reconstruction only where the condition is the face's own geometry; L1 inside the
        # mask, normalised by its area: the outside is copied by construction
        w = mask * own[:, None, None, None].float()
        g_l1 = ((fake - img).abs() * w).sum() / (w.sum() * 3 + 1)
        g_fm = feature_matching(real_f, fake_f, own) if own.any() else torch.zeros(())
        g_loss = g_adv + cfg.l1_weight * g_l1 + cfg.fm_weight * g_fm
    if cfg.tone_weight > 0 and foreign.any():
        g_tone = tone_match(fake[foreign].float(), img[foreign], mask[foreign])
        g_loss = g_loss + cfg.tone_weight * g_tone
    if identity is not None and foreign.any():
        g_id, id_sim = identity(fake[foreign].float(), img[foreign])
        g_loss = g_loss + cfg.id_weight * g_id
    if geometry is not None:
        g_geo = geometry(fake, target)
        g_loss = g_loss + cfg.geometry_weight * g_geo
    if cfg.diversity_weight > 0 and foreign.any():
        f = foreign
        other = torch.randn_like(noise[f]) if noise is not None else None
        with torch.autocast(**amp):
            fake2 = G(img[f], mask[f], cond[f], other)
        g_div, div_sim = draw_similarity(identity, fake[f].float(), fake2.float(), cfg.diversity_margin)
        g_loss = g_loss + cfg.diversity_weight * g_div
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    with torch.no_grad():
        for pe, p in zip(G_ema.parameters(), G.parameters()):
            pe.lerp_(p, 1 - cfg.ema)
        for be, b in zip(G_ema.buffers(), G.buffers()):
            be.copy_(b)
    return g_adv, g_l1, g_fm, g_id, id_sim, g_tone, g_geo, g_div, div_sim


@torch.no_grad()
def save_grid(G, batch, path, n: int = 8):
    img, mask, cond = (t[:n] for t in batch[:3])
    with torch.autocast(device_type=img.device.type, dtype=torch.bfloat16, enabled=img.device.type == "cuda"):
        fake = G(img, mask, cond, noise=torch.zeros_like(mask)).float()
    cond_rgb = cond.amax(1, keepdim=True).expand(-1, 3, -1, -1) * 2 - 1
    rows = torch.cat([img * (1 - mask), cond_rgb, fake, img], dim=2)  # columns of 4 tiles
    grid = torch.cat(list(rows), dim=2)
    arr = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    Image.fromarray(arr).save(path)
