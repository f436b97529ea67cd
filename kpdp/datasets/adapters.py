"""Adapters for the official on-disk layouts of the face data sets the benchmark reads."""
from __future__ import annotations

from pathlib import Path

from .base import DatasetError, FaceDataset, Sample, image_files
from kpdp.registry import Registry, UnknownName


class LFW(FaceDataset):
    """Labeled Faces in the Wild: ``lfw-deepfunneled/<Name>/<Name>_NNNN.jpg`` (or plain ``lfw/``).

    Splits follow View 1: ``devtrain`` = people of ``peopleDevTrain.txt``, ``devtest`` = people of
    ``peopleDevTest.txt``; ``all`` = every image. View 2 pairs come from :meth:`pairs`.
    """

    name = "lfw"
    splits = ("all", "devtrain", "devtest")
    IMAGE_DIRS = ("lfw-deepfunneled", "lfw", "lfw_funneled")

    def image_dir(self) -> Path:
        for d in self.IMAGE_DIRS:
            if (self.root / d).is_dir():
                # the official tarballs unpack to lfw-deepfunneled/lfw-deepfunneled/ on some mirrors
                inner = self.root / d / d
                return inner if inner.is_dir() else self.root / d
        if any(p.is_dir() and p.name.count("_") >= 1 for p in self.root.iterdir()):
            return self.root
        raise DatasetError(f"lfw: no {' or '.join(self.IMAGE_DIRS)} folder under {self.root}")

    def _people_file(self, split: str) -> Path:
        f = self.root / {"devtrain": "peopleDevTrain.txt", "devtest": "peopleDevTest.txt"}[split]
        if not f.is_file():
            raise DatasetError(f"lfw split '{split}' needs {f.name} in {self.root} (LFW View 1 protocol file)")
        return f

    def _scan(self) -> list[Sample]:
        img_dir = self.image_dir()
        if self.split == "all":
            people = sorted(p.name for p in img_dir.iterdir() if p.is_dir())
            wanted = None
        else:
            wanted = _read_people(self._people_file(self.split))
            people = sorted(wanted)
        out = []
        for name in people:
            d = img_dir / name
            if not d.is_dir():
                raise DatasetError(f"lfw: person {name} listed in the split file has no folder {d}")
            files = image_files(d)
            if wanted is not None:
                files = files[: wanted[name]]
            out += [Sample(f"{name}/{f.stem}", name, f) for f in files]
        return out

    def path_of(self, name: str, number: int) -> Path:
        return self.image_dir() / name / f"{name}_{number:04d}.jpg"

    def pairs(self, file: str = "pairs.txt") -> list[tuple[int, Path, Path, bool]]:
        """View 2 pairs as ``(fold, path_a, path_b, same_person)``; 10 folds of 300 + 300."""
        f = self.root / file
        if not f.is_file():
            raise DatasetError(f"lfw: {f} not found (the View 2 protocol file)")
        lines = [ln.split() for ln in f.read_text().splitlines() if ln.strip()]
        n_folds, n_per = (int(x) for x in lines[0])
        rows, out = lines[1:], []
        for i, r in enumerate(rows):
            fold = i // (2 * n_per)
            if len(r) == 3:
                out.append((fold, self.path_of(r[0], int(r[1])), self.path_of(r[0], int(r[2])), True))
            elif len(r) == 4:
                out.append((fold, self.path_of(r[0], int(r[1])), self.path_of(r[2], int(r[3])), False))
            else:
                raise DatasetError(f"lfw: malformed line {i + 2} in {f}: {' '.join(r)}")
        if len(out) != n_folds * n_per * 2:
            raise DatasetError(f"lfw: {f} holds {len(out)} pairs, header says {n_folds} x {2 * n_per}")
        return out


def _read_people(f: Path) -> dict[str, int]:
    lines = [ln.split() for ln in f.read_text().splitlines() if ln.strip()]
    body = lines[1:] if len(lines[0]) == 1 else lines
    return {r[0]: int(r[1]) for r in body if len(r) == 2}


class LFWSample(LFW):
    """The embedded default: a few hundred LFW images shipped inside the package.

    ``devtest`` (also ``all``, the name earlier runs used): the 256 evaluation images, of LFW
    devtest people. ``devtrain``: the images of LFW devtrain people (listed in the sample's
    ``peopleDevTrain.txt``, made by ``scripts/make_sample_train.py``) that the attackers who adapt
    train on: other people than the evaluation images, as on the full LFW.
    """

    name = "lfw-sample"
    splits = ("all", "devtest", "devtrain")
    default_root = str(Path(__file__).parent / "lfw_sample")

    def _scan(self) -> list[Sample]:
        if self.split == "devtrain":
            return LFW._scan(self)
        train = self.root / "peopleDevTrain.txt"
        training_people = set(_read_people(train)) if train.is_file() else set()
        split, self.split = self.split, "all"
        try:
            return [s for s in LFW._scan(self) if s.identity not in training_people]
        finally:
            self.split = split


class CelebA(FaceDataset):
    """CelebA: ``img_align_celeba/`` (or ``img_celeba/``) + ``identity_CelebA.txt``.

    Splits, by identity number, never by image, so every person lies in exactly one split:

    - ``eval``: identity % 5 == 0 (held back for evaluating anonymisers on CelebA);
    - ``probe-val``: identity % 5 == 1 (held-out people the attribute probes are validated on);
    - ``probe-train``: identity % 5 in {2, 3, 4} (what the attribute probes are trained on);
    - ``all`` (the default): every image.

    Example:
        >>> [CelebA.split_of(i) for i in ("10", "11", "12", "13", "14")]
        ['eval', 'probe-val', 'probe-train', 'probe-train', 'probe-train']
    """

    name = "celeba"
    splits = ("all", "eval", "probe-train", "probe-val")
    IMAGE_DIRS = ("img_align_celeba", "img_celeba")
    SPLIT_RULE = "identity % 5 == 0: eval; identity % 5 == 1: probe-val; identity % 5 in (2, 3, 4): probe-train"

    @staticmethod
    def split_of(identity: str) -> str:
        """The split an identity number belongs to (the rule of :attr:`SPLIT_RULE`)."""
        r = int(identity) % 5
        return "eval" if r == 0 else "probe-val" if r == 1 else "probe-train"

    def _scan(self) -> list[Sample]:
        img_dir = next((self.root / d for d in self.IMAGE_DIRS if (self.root / d).is_dir()), None)
        if img_dir is None:
            raise DatasetError(f"celeba: no {' or '.join(self.IMAGE_DIRS)} folder under {self.root}")
        ids = read_celeba_identities(self.root / "identity_CelebA.txt")
        out = []
        for f in image_files(img_dir):
            if f.name in ids and (self.split == "all" or self.split_of(ids[f.name]) == self.split):
                out.append(Sample(f.stem, ids[f.name], f))
        return out


def read_celeba_identities(f: Path) -> dict[str, str]:
    """``000001.jpg 2880`` per line; a header line (count, or column names) is tolerated."""
    if not f.is_file():
        raise DatasetError(f"celeba: identity file {f} not found")
    out = {}
    for ln in f.read_text().splitlines():
        r = ln.split()
        if len(r) == 2 and r[1].isdigit() and "." in r[0]:
            out[r[0]] = r[1]
    if not out:
        raise DatasetError(f"celeba: {f} holds no '<file> <identity>' lines")
    return out


class CelebAHQ(FaceDataset):
    """CelebA-HQ images (``<idx>.jpg``) + ``CelebA-HQ-to-CelebA-mapping.txt`` + ``identity_CelebA.txt``."""

    name = "celeba-hq"
    splits = ("all",)
    IMAGE_DIRS = ("CelebA-HQ-img", "CelebAMask-HQ/CelebA-HQ-img", "celeba-hq", "images")

    def _scan(self) -> list[Sample]:
        img_dir = next((self.root / d for d in self.IMAGE_DIRS if (self.root / d).is_dir()), None)
        if img_dir is None:
            raise DatasetError(f"celeba-hq: no image folder ({', '.join(self.IMAGE_DIRS)}) under {self.root}")
        mapping_file = _find(self.root, "CelebA-HQ-to-CelebA-mapping.txt")
        ids = read_celeba_identities(_find(self.root, "identity_CelebA.txt"))
        hq_to_orig = {}
        for ln in mapping_file.read_text().splitlines():
            r = ln.split()
            if len(r) >= 3 and r[0].isdigit():
                hq_to_orig[int(r[0])] = r[2]
        out = []
        for f in image_files(img_dir):
            if f.stem.isdigit() and int(f.stem) in hq_to_orig and hq_to_orig[int(f.stem)] in ids:
                out.append(Sample(f.stem, ids[hq_to_orig[int(f.stem)]], f))
        return out


def _find(root: Path, name: str) -> Path:
    for cand in (root / name, root / "Anno" / name, root / "CelebAMask-HQ" / name):
        if cand.is_file():
            return cand
    raise DatasetError(f"{name} not found under {root}")


class VGGFace2(FaceDataset):
    """VGGFace2: ``<train|test>/nXXXXXX/*.jpg``."""

    name = "vggface2"
    splits = ("all", "train", "test")

    def _scan(self) -> list[Sample]:
        parts = ("train", "test") if self.split == "all" else (self.split,)
        out = []
        for part in parts:
            d = self.root / part
            if not d.is_dir():
                if self.split != "all":
                    raise DatasetError(f"vggface2: no {part}/ folder under {self.root}")
                continue
            for person in sorted(p for p in d.iterdir() if p.is_dir()):
                out += [Sample(f"{part}/{person.name}/{f.stem}", person.name, f) for f in image_files(person)]
        return out


class ORL(FaceDataset):
    """AT&T / ORL: ``att_faces/sN/M.pgm`` (grayscale; :func:`load_image` serves 3-channel RGB)."""

    name = "orl"
    splits = ("all",)

    def _scan(self) -> list[Sample]:
        d = self.root / "att_faces" if (self.root / "att_faces").is_dir() else self.root
        people = sorted((p for p in d.iterdir() if p.is_dir() and p.name.startswith("s")),
                        key=lambda p: int(p.name[1:]) if p.name[1:].isdigit() else 0)
        out = []
        for person in people:
            files = sorted(image_files(person), key=lambda f: int(f.stem) if f.stem.isdigit() else 0)
            out += [Sample(f"{person.name}/{f.stem}", person.name, f) for f in files]
        return out


class Folder(FaceDataset):
    """Any folder with one sub-folder per identity."""

    name = "folder"
    splits = ("all",)

    def _scan(self) -> list[Sample]:
        out = []
        for person in sorted(p for p in self.root.iterdir() if p.is_dir()):
            out += [Sample(f"{person.name}/{f.stem}", person.name, f) for f in image_files(person)]
        return out


DATASETS = Registry("data set")
for _cls in (LFW, LFWSample, CelebA, CelebAHQ, VGGFace2, ORL, Folder):
    DATASETS.register(_cls)


def get_dataset(name: str, root: str | Path | None = None, split: str | None = None) -> FaceDataset:
    """Open a data set by registry name. ``split=None`` picks ``devtest`` for LFW, else ``all``."""
    try:
        cls = DATASETS.get(name)
    except UnknownName as exc:
        raise DatasetError(str(exc)) from None
    if split is None:
        split = "devtest" if "devtest" in cls.splits else "all"
    return cls(root, split)
