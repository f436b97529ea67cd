"""CLI commands for the identity space and the anonymiser."""
from __future__ import annotations

import sys
from pathlib import Path


def cmd_fit_space(a):
    import numpy as np

    from . import landmark_cache as lc
    from .datasets import get_dataset
    from .space import fit

    if a.landmarks:
        lms = lc.merge([lc.load(Path(p)) for p in a.landmarks])
    else:
        lms = lc.extract_landmarks(get_dataset("lfw", a.root, a.split))
    cmd = "python -m kpdp " + " ".join(sys.argv[1:]) if a.command is None else a.command
    space = fit(lms["landmarks"], lms["identity"], n_pca=a.n_pca,
                meta={"fit_data": f"LFW {a.split} ({len(lms['image_id'])} images), dlib68 landmarks "
                                  f"({str(lms['finder'])})", "fit_command": cmd})
    digest = space.save(Path(a.out))
    print(f"wrote {a.out} sha256(arrays)={digest}")
    print("component  fisher_ratio  lo        hi")
    for k in range(len(space.lo)):
        print(f"{k + 1:9d}  {space.fisher_ratio[k]:12.3f}  {space.lo[k]:+.4f}  {space.hi[k]:+.4f}")
    print(f"mean fisher ratio {np.mean(space.fisher_ratio):.3f}")


def _landmarks(a):
    from . import landmark_cache as lc
    from .datasets import get_dataset

    if a.landmarks:
        return lc.merge([lc.load(Path(p)) for p in a.landmarks])
    if not a.root:
        sys.exit("give --landmarks (caches from `python -m kpdp landmarks`) or --root")
    return lc.extract_landmarks(get_dataset("lfw", a.root, a.split))


def cmd_fit_residual(a):
    import numpy as np

    from .residual import fit
    from .space import IdentitySpace

    lms = _landmarks(a)
    space = IdentitySpace.load()
    residuals = np.stack([space.encode(x)[1] for x in lms["landmarks"]])
    cmd = "python -m kpdp " + " ".join(sys.argv[1:]) if a.command is None else a.command
    basis = fit(residuals, lms["identity"], k=a.k, alpha=a.alpha,
                meta={"fit_data": f"LFW {a.split} ({len(lms['image_id'])} images), dlib68 landmarks "
                                  f"({str(lms['finder'])})", "fit_command": cmd,
                      "identity_space": space.meta.get("sha256_arrays", "?")})
    print(f"wrote {a.out} sha256(arrays)={basis.save(Path(a.out))}")
    print("between/within identity variance ratio per kept direction:", np.round(basis.ratio, 3).tolist())


def add_commands(sub):
    s = sub.add_parser("fit-space", help="fit the 16-component identity space on LFW devtrain")
    s.add_argument("--root", help="LFW root (landmarks are extracted with dlib68)")
    s.add_argument("--split", default="devtrain")
    s.add_argument("--landmarks", nargs="+", help="precomputed landmark caches (python -m kpdp landmarks)")
    s.add_argument("--out", default=str(Path(__file__).parent / "assets" / "identity_space.safetensors"))
    s.add_argument("--n-pca", type=int, default=48), s.add_argument("--command")
    s.set_defaults(func=cmd_fit_space)

    s = sub.add_parser("fit-residual", help="fit the residual directions KPDP keeps (kpdp.residual)")
    s.add_argument("--root"), s.add_argument("--split", default="devtrain")
    s.add_argument("--landmarks", nargs="+", help="precomputed landmark caches (python -m kpdp landmarks)")
    s.add_argument("--out", default=str(Path(__file__).parent / "assets" / "residual_basis.safetensors"))
    s.add_argument("--k", type=int, default=4), s.add_argument("--alpha", type=float, default=2.0)
    s.add_argument("--command")
    s.set_defaults(func=cmd_fit_residual)

    return sub
