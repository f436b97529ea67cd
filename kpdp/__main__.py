"""``python -m kpdp``: fit the identity space, train the generator, anonymise a folder."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _landmarks_for(dataset: str, root: str, split: str, cache: Path):
    from . import landmark_cache as lc
    from .datasets import get_dataset

    if cache.exists():
        return lc.load(cache), get_dataset(dataset, root, split)
    ds = get_dataset(dataset, root, split)
    arrays = lc.extract_landmarks(ds)
    lc.save(cache, arrays)
    return arrays, ds


def cmd_landmarks(a):
    from . import landmark_cache as lc
    from .datasets import get_dataset

    ds = get_dataset(a.dataset, a.root, a.split)
    arrays = lc.extract_landmarks(ds)
    lc.save(Path(a.out), arrays)
    print(f"{len(arrays['image_id'])} faces, {len(arrays['failed'])} failures -> {a.out}")


def _range(text: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in text.split(","))
    return lo, hi


def cmd_train(a):
    from .train import TrainConfig, train
    from . import train_data

    data = a.data
    if data is None:
        if a.root is None:
            sys.exit("kpdp train: give --data (a packed file) or --root and --split")
        work = Path(a.out) / "data"
        lms, ds = _landmarks_for("lfw", a.root, a.split, work / f"landmarks_{a.split}.npz")
        data = work / f"crops_{a.split}.npz"
        if not data.exists():
            train_data.pack(lms, {s.image_id: s.path for s in ds}, data)
    deepprivacy = a.deepprivacy
    cfg = TrainConfig(data=str(data), out=a.out, condition=a.condition or ("sparse7" if deepprivacy else "dense68"),
                      mask=a.mask or ("box" if deepprivacy else "ellipse"), steps=a.steps, batch=a.batch, lr=a.lr,
                      seed=a.seed, device=a.device, minutes=a.minutes, base=a.base,
                      mask_dilate=_range(a.mask_dilate), mask_forehead=_range(a.mask_forehead),
                      init_from=a.init_from, init_discriminator=a.init_discriminator,
                      ckpt_every=a.ckpt_every, sample_every=a.sample_every,
                      foreign_p=a.foreign_p, id_weight=a.id_weight, id_margin=a.id_margin,
                      l1_weight=a.l1_weight, ema=a.ema, d_warmup=a.d_warmup, balance=a.balance,
                      g_lr=a.g_lr, precision=a.precision, tone_weight=a.tone_weight,
                      geometry_weight=a.geometry_weight, geometry_net=a.geometry_net,
                      diversity_weight=a.diversity_weight, diversity_margin=a.diversity_margin)
    print(f"checkpoint: {train(cfg)}")


def cmd_pack(a):
    from . import landmark_cache as lc, train_data
    from .datasets import get_dataset

    lms = lc.merge([lc.load(Path(p)) for p in a.landmarks])
    ds = get_dataset("lfw", a.root, a.split)
    print(train_data.pack(lms, {s.image_id: s.path for s in ds}, Path(a.out)))


def cmd_train_landmarks(a):
    from . import landmark_net, train_data

    torch_threads(a.threads)
    meta = {"command": "python -m kpdp " + " ".join(sys.argv[1:]), "train_data": str(a.data)}
    record = landmark_net.train(train_data.load(Path(a.data)), Path(a.out), a.minutes, batch=a.batch, lr=a.lr,
                                seed=a.seed, width=a.width, meta=meta)
    print(f"{a.out}: held-out NME {record['held_out_nme']:.4f} ({record['held_out_faces']} faces of "
          f"{record['held_out_people']} people), {record['steps']} steps")


def torch_threads(n: int) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def cmd_export(a):
    from .train_checkpoints import export_generator

    meta = {"condition": a.condition, "train_command": a.command, "train_data": a.data_desc}
    print(export_generator(Path(a.ckpt), Path(a.out), meta))


def cmd_export_discriminator(a):
    from .train_checkpoints import export_discriminator

    meta = {"condition": a.condition, "train_command": a.command, "pairs_with": a.pairs_with}
    print(export_discriminator(Path(a.ckpt), Path(a.out), meta))


from .failclosed import NO_FACE, anonymize_faces, obscure  # noqa: E402  (the CLI's policy is the API's)


def cmd_anonymize(a):
    """Anonymise every face of every image of a folder, failing closed (see ``--no-face``)."""
    import numpy as np
    from PIL import Image

    from .anonymizer import KPDPAnonymizer
    from .datasets import IMAGE_SUFFIXES, ImageLoadError, load_image
    from .faces import BackendUnavailable, get_landmarker
    from .faces.detectors import RecallFirstDetector
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
    members = tuple(d.strip() for d in a.detectors.split(",") if d.strip())
    try:
        finder = RecallFirstDetector(a.device, members=members)
        landmarker = get_landmarker("dlib68", a.device)
    except (KeyError, BackendUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    method = KPDPAnonymizer(eps=eps, device=a.device, hands=a.hands)
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    report = ["file\tfaces\tstatus\tdetail"]
    counts = {"anonymised": 0, "faces": 0, "no face": 0, "unreadable": 0}
    for k, f in enumerate(files):
        rel = f.relative_to(src)
        out_path = dst / rel.with_suffix(".png")
        try:
            image = load_image(f)
        except ImageLoadError as exc:
            report.append(f"{rel}\t-\tskipped\t{exc.reason}")
            counts["unreadable"] += 1
            continue
        faces = finder.detect(image)
        for fc in faces:  # the anonymiser draws each face from its 68 landmarks
            fc.landmarks = landmarker.landmarks(image, fc)
        seed = None if a.seed is None else a.seed * 1_000_003 + k
        if faces:
            out, notes = anonymize_faces(method, image, faces, seed)
            status = "anonymised"
            detail = "; ".join(["by " + ", ".join("+".join(fc.extra.get("found_by", [])) for fc in faces)] + notes)
            counts["anonymised"] += 1
            counts["faces"] += len(faces)
        else:
            counts["no face"] += 1
            detail = f"no face found by {'+'.join(finder.members)}"
            if a.no_face == "skip":
                report.append(f"{rel}\t0\tnot written\t{detail} (--no-face skip)")
                continue
            out = obscure(image) if a.no_face == "blur-all" else image
            status = "blurred whole" if a.no_face == "blur-all" else "copied unchanged"
            detail += f" (--no-face {a.no_face})"
        out_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(out)).save(out_path)
        report.append(f"{rel}\t{len(faces)}\t{status}\t{detail}")
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "anonymize_report.tsv").write_text("\n".join(report) + "\n")
    mode = "seeded (reproducible, NOT a private release)" if a.seed is not None else "secure (OpenDP)"
    print(f"{len(files)} images -> {dst}: {counts['anonymised']} anonymised ({counts['faces']} faces), "
          f"{counts['no face']} with no face found ("
          + {"skip": "not written", "blur-all": "written blurred whole", "copy": "COPIED UNCHANGED"}[a.no_face]
          + f"), {counts['unreadable']} unreadable; noise: {mode}; eps={eps} per face; "
            f"report: {dst / 'anonymize_report.tsv'}")
    if counts["no face"] and a.no_face != "blur-all":
        print(f"warning: no face was found in {counts['no face']} image(s): "
              + ("they were not written" if a.no_face == "skip" else "they were copied UNCHANGED")
              + f"; see {dst / 'anonymize_report.tsv'}", file=sys.stderr)
    return 0


def _anonymize_parser(sub):
    """``anonymize``: fail closed (see :func:`cmd_anonymize`)."""
    s = sub.add_parser("anonymize", help="anonymise every face of every image in a folder")
    s.add_argument("in_dir"), s.add_argument("out_dir")
    s.add_argument("--eps", default="1.0", help="privacy budget per face (identity coordinates)")
    s.add_argument("--seed", type=int, help="seeded noise for reproducible experiments (not private)")
    s.add_argument("--device", default="cpu")
    s.description = ("Anonymise every face of every image in a folder. Faces are found by the union of "
                     "offline detectors (recall first); an image where none is found is handled by --no-face "
                     "(default: not written), and every face found is anonymised or, failing that, pixelated.")
    s.add_argument("--no-face", choices=NO_FACE, default="skip",
                   help="an image with no face found: skip (not written, default), blur-all (written "
                        "pixelated and blurred whole) or copy (written unchanged)")
    s.add_argument("--detectors", default="dlib-hog,mtcnn,centerface",
                   help="the detectors whose union finds faces (add dlib-cnn for more recall, ~2 s/image)")
    s.add_argument("--hands", choices=("paint", "keep"), default="paint",
                   help="a hand in front of a face: painted over with the face (default) or kept, the face "
                        "drawn behind it (MediaPipe's hand models, offline; objects and hair are not found)")
    s.set_defaults(func=cmd_anonymize)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m kpdp", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("landmarks", help="dlib68 landmarks of a data set split, cached as .npz")
    s.add_argument("--dataset", default="lfw"), s.add_argument("--root", required=True)
    s.add_argument("--split", default="devtrain"), s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_landmarks)

    s = sub.add_parser("pack", help="aligned training crops from landmark caches")
    s.add_argument("--landmarks", nargs="+", required=True), s.add_argument("--root", required=True)
    s.add_argument("--split", default="devtrain"), s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_pack)

    s = sub.add_parser("train", help="train the generator (resumes from OUT/last.pt)")
    s.add_argument("--root"), s.add_argument("--split", default="devtrain")
    s.add_argument("--data", help="a packed crops file (skips landmark extraction)")
    s.add_argument("--out", required=True), s.add_argument("--steps", type=int, default=20000)
    s.add_argument("--batch", type=int, default=32), s.add_argument("--lr", type=float, default=2e-4)
    s.add_argument("--base", type=int, default=32)
    s.add_argument("--seed", type=int, default=0), s.add_argument("--device", default="cpu")
    s.add_argument("--minutes", type=float, default=0.0, help="stop with a checkpoint after this long")
    s.add_argument("--deepprivacy", action="store_true", help="7 sparse keypoints, box mask (baseline)")
    s.add_argument("--condition", choices=("dense68", "sparse7", "sparse7+dense68"),
                   help="landmark condition (default: dense68; sparse7 with --deepprivacy; KPDP v3: sparse7+dense68)")
    s.add_argument("--d-warmup", type=int, default=0, help="steps in which only the discriminator learns")
    s.add_argument("--balance", default="", help=".npz of per-image sampling weights (python -m kpdp balance)")
    s.add_argument("--mask-dilate", default="0,0", help="LO,HI: landmark-mask dilation drawn per sample "
                   "(x face width); 0,0 = the packed masks")
    s.add_argument("--mask-forehead", default="0.1,0.1", help="LO,HI: forehead lift drawn per sample (x face height)")
    s.add_argument("--init-from", default="", help="exported generator to start from (fine-tuning)")
    s.add_argument("--init-discriminator", default="",
                   help="exported discriminator to start from (python -m kpdp export-discriminator): a chunk on "
                        "another machine keeps the last chunk's critic")
    s.add_argument("--mask", choices=("ellipse", "landmarks", "box"),
                   help="training masks (default: ellipse for kpdp, box for --deepprivacy)")
    s.add_argument("--foreign-p", type=float, default=0.0,
                   help="fraction of each batch conditioned on a KPDP release of the face's geometry")
    s.add_argument("--id-weight", type=float, default=0.0, help="identity-distance term (torch FaceNet)")
    s.add_argument("--id-margin", type=float, default=0.3, help="cosine similarity to the source penalised above")
    s.add_argument("--l1-weight", type=float, default=10.0, help="reconstruction weight (own-geometry samples)")
    s.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported generator")
    s.add_argument("--g-lr", type=float, default=0.0, help="generator learning rate (0 = --lr), also on resume")
    s.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="autocast: auto = bf16 on CUDA only; bf16 also on a CPU with bf16 units")
    s.add_argument("--tone-weight", type=float, default=0.0,
                   help="foreign samples keep the source's mean colours in a 4 x 4 grid (skin tone, light)")
    s.add_argument("--geometry-weight", type=float, default=0.0,
                   help="the drawn face's landmarks (kpdp.landmark_net) against the geometry it was given")
    s.add_argument("--geometry-net", default="", help="landmark network weights (default: the shipped one)")
    s.add_argument("--diversity-weight", type=float, default=0.0,
                   help="two draws of one foreign geometry with other noise: their FaceNet similarity penalised")
    s.add_argument("--diversity-margin", type=float, default=0.5, help="draw similarity penalised above this")
    s.add_argument("--ckpt-every", type=int, default=1000), s.add_argument("--sample-every", type=int, default=1000)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("train-landmarks", help="the 68-point network that training uses to check a drawn face "
                       "follows its condition (kpdp.landmark_net; not an evaluation model)")
    s.add_argument("--data", required=True, help="a packed crops file (python -m kpdp pack)")
    s.add_argument("--out", default=str(Path(__file__).parent / "assets" / "landmark_net.safetensors"))
    s.add_argument("--minutes", type=float, default=20.0), s.add_argument("--batch", type=int, default=32)
    s.add_argument("--lr", type=float, default=2e-3), s.add_argument("--width", type=int, default=32)
    s.add_argument("--seed", type=int, default=0), s.add_argument("--threads", type=int, default=0)
    s.set_defaults(func=cmd_train_landmarks)

    s = sub.add_parser("export-generator", help="EMA generator -> fp16 safetensors + metadata")
    s.add_argument("--ckpt", required=True), s.add_argument("--out", required=True)
    s.add_argument("--condition", default="dense68"), s.add_argument("--command", default="")
    s.add_argument("--data-desc", default="LFW devtrain (peopleDevTrain.txt), dlib68 landmarks")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("export-discriminator", help="discriminator -> fp16 safetensors + metadata, so that the "
                       "next chunk resumes with it on any machine (train --init-discriminator)")
    s.add_argument("--ckpt", required=True), s.add_argument("--out", required=True)
    s.add_argument("--condition", default="dense68"), s.add_argument("--command", default="")
    s.add_argument("--pairs-with", default="", help="the generator it was trained against (file and sha256)")
    s.set_defaults(func=cmd_export_discriminator)

    from . import cli_space  # the identity-space commands live beside it

    cli_space.add_commands(sub)
    _anonymize_parser(sub)
    a = p.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
