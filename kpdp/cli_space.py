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


def cmd_anonymize(a):
    import numpy as np
    from PIL import Image

    from .anonymizer import KPDPAnonymizer
    from .datasets import IMAGE_SUFFIXES, ImageLoadError, load_image
    from .faces.analyze import FaceFinder
    from .mechanism import check_eps

    try:
        eps = check_eps(a.eps)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    src, dst = Path(a.in_dir), Path(a.out_dir)
    if not src.is_dir():
        print(f"error: input folder {src} does not exist", file=sys.stderr)
        return 2
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    finder, method = FaceFinder(device=a.device), KPDPAnonymizer(eps=eps, device=a.device)
    report = []
    for k, f in enumerate(files):
        out_path = dst / f.relative_to(src).with_suffix(".png")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            image = load_image(f)
        except ImageLoadError as exc:
            report.append(f"{f}\tskipped\t{exc.reason}")
            continue
        faces = finder.all_faces(image)
        seed = None if a.seed is None else a.seed * 1_000_003 + k
        out = method.anonymize(image, faces, seed=seed).image if faces else image
        Image.fromarray(np.asarray(out)).save(out_path)
        report.append(f"{f}\t{len(faces)} face(s)\t" + ("no face found: copied unchanged" if not faces else "ok"))
    (dst / "anonymize_report.tsv").write_text("\n".join(report) + "\n")
    mode = "seeded (reproducible, NOT a private release)" if a.seed is not None else "secure (OpenDP)"
    print(f"{len(files)} images -> {dst}; noise: {mode}; eps={eps} per face; report: {dst / 'anonymize_report.tsv'}")
    return 0


def add_commands(sub):
    s = sub.add_parser("fit-space", help="fit the 16-component identity space on LFW devtrain")
    s.add_argument("--root", help="LFW root (landmarks are extracted with dlib68)")
    s.add_argument("--split", default="devtrain")
    s.add_argument("--landmarks", nargs="+", help="precomputed landmark caches (python -m kpdp landmarks)")
    s.add_argument("--out", default=str(Path(__file__).parent / "assets" / "identity_space.safetensors"))
    s.add_argument("--n-pca", type=int, default=48), s.add_argument("--command")
    s.set_defaults(func=cmd_fit_space)

    s = sub.add_parser("anonymize", help="anonymise every face of every image in a folder")
    s.add_argument("in_dir"), s.add_argument("out_dir")
    s.add_argument("--eps", default="1.0", help="privacy budget per face (identity coordinates)")
    s.add_argument("--seed", type=int, help="seeded noise for reproducible experiments (not private)")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_anonymize)
    return sub
