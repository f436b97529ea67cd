"""The conditional generator and discriminator (spec section 4), and the landmark condition maps.

Works on aligned ``128 x 128`` crops (see :mod:`kpdp.faces.geometry`). The generator is a U-Net
whose decoder normalisation is modulated by the landmark condition (SPADE); it sees the crop with
the face masked out, the mask, the condition map and a spatial noise code, and its output is
composited ``y = M * G + (1 - M) * x`` so that pixels outside the mask are the input's.

Two conditions share the same network class:

- ``dense68``: the 68 target landmarks drawn as a line drawing, one channel per facial part.
- ``sparse7``: 7 keypoints (eye centres, nose tip, mouth corners, jaw 0 and 16), one channel each
  (the DeepPrivacy-style baseline).
- ``sparse7+dense68``: both, sparse first (KPDP v3): a network trained on ``sparse7`` grows into it
  with :func:`grow_condition`, the new channels' weights zero, so that it starts as that network.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# facial parts as polylines over the iBUG 68 points (closed ones repeat their first point)
PARTS_68 = [
    list(range(0, 17)), list(range(17, 22)), list(range(22, 27)), list(range(27, 31)), list(range(31, 36)),
    list(range(36, 42)) + [36], list(range(42, 48)) + [42], list(range(48, 60)) + [48],
    list(range(60, 68)) + [60],
]
CONDITIONS = {"dense68": len(PARTS_68), "sparse7": 7, "sparse7+dense68": 7 + len(PARTS_68)}
# horizontal flip permutation of the 68 points (for augmentation)
FLIP_68 = (list(range(16, -1, -1)) + list(range(26, 16, -1)) + list(range(27, 31)) + [35, 34, 33, 32, 31]
           + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40] + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
           + [64, 63, 62, 61, 60, 67, 66, 65])


def sparse7(lm: torch.Tensor) -> torch.Tensor:
    """(B, 68, 2) -> (B, 7, 2): eye centres, nose tip, mouth corners, jaw 0 and 16."""
    return torch.stack([lm[:, 36:42].mean(1), lm[:, 42:48].mean(1), lm[:, 30], lm[:, 48], lm[:, 54],
                        lm[:, 0], lm[:, 16]], dim=1)


def _gauss(points: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """(B, K, P, 2) points -> (B, K, size, size): max over P of Gaussian bumps."""
    g = torch.arange(size, device=points.device, dtype=points.dtype) + 0.5
    # separable: exp(-(dx²+dy²)/2σ²) = exp(-dx²/2σ²)·exp(-dy²/2σ²), P·2S exponentials instead of P·S²
    ex = torch.exp(-(g.view(1, 1, 1, 1, size) - points[..., 0, None, None]) ** 2 / (2 * sigma ** 2))  # B,K,P,1,S
    ey = torch.exp(-(g.view(1, 1, 1, size, 1) - points[..., 1, None, None]) ** 2 / (2 * sigma ** 2))  # B,K,P,S,1
    return (ey * ex).amax(dim=2)


def render_condition(lm: torch.Tensor, size: int, kind: str = "dense68", sigma: float = 1.2) -> torch.Tensor:
    """Condition map for landmarks ``lm`` (B, 68, 2) in crop pixels, values in [0, 1]."""
    if kind == "sparse7":
        return _gauss(sparse7(lm)[:, :, None], size, 2.0 * sigma)
    if kind == "sparse7+dense68":
        return torch.cat([render_condition(lm, size, "sparse7", sigma), render_condition(lm, size, "dense68", sigma)], 1)
    if kind != "dense68":
        raise ValueError(f"unknown condition '{kind}'; valid: {', '.join(CONDITIONS)}")
    chans = []
    for part in PARTS_68:
        p = lm[:, part]
        # densify each polyline so that the drawing is a continuous line at any face size
        t = torch.linspace(0, 1, 6, device=lm.device, dtype=lm.dtype)[:-1].view(1, 1, -1, 1)
        seg = p[:, :-1, None] * (1 - t) + p[:, 1:, None] * t
        dense = torch.cat([seg.flatten(1, 2), p[:, -1:]], dim=1)
        chans.append(_gauss(dense[:, None], size, sigma))
    return torch.cat(chans, dim=1)


def grow_condition(state: dict, old: str, new: str) -> dict:
    """A generator's weights for condition ``old`` as weights for ``new``, whose condition channels
    begin with ``old``'s: the inputs of the new channels get zero weights, so the grown network
    computes exactly what the old one did until training moves them (the stem sees
    ``[image, mask, condition, noise]``, every SPADE ``[condition, mask]``)."""
    c_old, c_new = CONDITIONS[old], CONDITIONS[new]
    if c_new < c_old:
        raise ValueError(f"condition {new} ({c_new} channels) cannot grow from {old} ({c_old})")
    out = dict(state)
    for key, w in state.items():
        if key == "stem.0.weight":
            at = 4 + c_old
        elif key.endswith("shared.0.weight"):
            at = c_old
        else:
            continue
        zeros = w.new_zeros(w.shape[0], c_new - c_old, *w.shape[2:])
        out[key] = torch.cat([w[:, :at], zeros, w[:, at:]], dim=1)
    return out


def box_masks(lm: torch.Tensor, size: int, margin: float = 0.15) -> torch.Tensor:
    """(B, 68, 2) landmarks -> (B, 1, size, size) masks of their box, grown, with a forehead band
    (the DeepPrivacy-style baseline masks the whole box)."""
    lo, hi = lm.amin(1), lm.amax(1)
    pad = (hi - lo) * margin
    lo, hi = lo - pad, hi + pad
    lo[:, 1] -= (hi[:, 1] - lo[:, 1]) * 0.1  # forehead
    g = torch.arange(size, device=lm.device, dtype=lm.dtype) + 0.5
    inx = (g[None] >= lo[:, :1]) & (g[None] <= hi[:, :1])
    iny = (g[None] >= lo[:, 1:]) & (g[None] <= hi[:, 1:])
    return (iny[:, :, None] & inx[:, None, :]).float()[:, None]


class SPADE(nn.Module):
    def __init__(self, channels: int, cond_channels: int, hidden: int = 64):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x, cond):
        h = self.shared(F.interpolate(cond, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


class SPADEBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_channels: int):
        super().__init__()
        self.n1, self.c1 = SPADE(cin, cond_channels), nn.Conv2d(cin, cout, 3, padding=1)
        self.n2, self.c2 = SPADE(cout, cond_channels), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x, cond):
        h = self.c1(F.leaky_relu(self.n1(x, cond), 0.2))
        h = self.c2(F.leaky_relu(self.n2(h, cond), 0.2))
        return h + self.skip(x)


def _down(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.InstanceNorm2d(cout, affine=True),
                         nn.LeakyReLU(0.2))


class Generator(nn.Module):
    """U-Net, encoder on (masked crop, mask, condition, noise), SPADE decoder with skips."""

    def __init__(self, condition: str = "dense68", base: int = 32, size: int = 128):
        super().__init__()
        self.condition, self.size = condition, size
        cc = CONDITIONS[condition] + 1  # + mask
        ch = [base, base * 2, base * 4, base * 8, base * 8]  # 128, 64, 32, 16, 8
        self.stem = nn.Sequential(nn.Conv2d(3 + 1 + CONDITIONS[condition] + 1, ch[0], 3, padding=1), nn.LeakyReLU(0.2))
        self.downs = nn.ModuleList([_down(ch[i], ch[i + 1]) for i in range(4)])
        self.mid = SPADEBlock(ch[4], ch[4], cc)
        self.ups = nn.ModuleList([SPADEBlock(ch[i + 1] + ch[i], ch[i], cc) for i in reversed(range(4))])
        self.out = nn.Conv2d(ch[0], 3, 3, padding=1)

    def forward(self, image, mask, cond, noise=None):
        """image in [-1, 1] (B,3,H,W); mask (B,1,H,W) 1 = to generate; cond (B,C,H,W)."""
        if noise is None:
            noise = torch.randn_like(mask)
        x = torch.cat([image * (1 - mask), mask, cond, noise * mask], dim=1)
        c = torch.cat([cond, mask], dim=1)
        skips = [self.stem(x)]
        for d in self.downs:
            skips.append(d(skips[-1]))
        h = self.mid(skips.pop(), c)
        for up in self.ups:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = up(torch.cat([h, skips.pop()], dim=1), c)
        g = torch.tanh(self.out(F.leaky_relu(h, 0.2)))
        return mask * g + (1 - mask) * image


class PatchDiscriminator(nn.Module):
    """Conditional patch discriminator on (image, condition, mask) at two scales."""

    def __init__(self, condition: str = "dense68", base: int = 64, scales: int = 2):
        super().__init__()
        cin = 3 + CONDITIONS[condition] + 1
        sn = nn.utils.spectral_norm
        self.nets = nn.ModuleList()
        for _ in range(scales):
            layers, c = [], cin
            for i, co in enumerate([base, base * 2, base * 4, base * 4]):
                layers += [sn(nn.Conv2d(c, co, 4, stride=2 if i < 3 else 1, padding=1)), nn.LeakyReLU(0.2)]
                c = co
            layers.append(sn(nn.Conv2d(c, 1, 4, padding=1)))
            self.nets.append(nn.Sequential(*layers))

    def forward(self, image, cond, mask):
        """Returns, per scale, the list of intermediate features; the last is the logit map."""
        x = torch.cat([image, cond, mask], dim=1)
        outs = []
        for i, net in enumerate(self.nets):
            xi = x if i == 0 else F.avg_pool2d(x, 2 ** i)
            feats = []
            for layer in net:
                xi = layer(xi)
                if isinstance(layer, nn.LeakyReLU) or layer is net[-1]:
                    feats.append(xi)
            outs.append(feats)
        return outs
