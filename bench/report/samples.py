"""The faces a report shows: each method re-run on a few of a run's originals with the run's own
per-image seeds (the very images it measured, checked against the stored digests), laid out as a
grid with a column head per method and ε; and ``bench sheet``'s contact sheet of chosen faces."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

from bench import methods as method_registry
from bench.measure.analysis import face_from_json, image_digest
from bench.measure.seeds import anonymise
from bench.report.figures import _order, cell_label
from bench.report.spec import ReportSpec
from bench.store.results import StoreReader
from kpdp.datasets import load_image
from kpdp.faces.analyze import FaceFinder, primary_index


def measured_samples(run_dir: Path, spec: ReportSpec | None = None, n_faces: int = 4,
                     cells: set[tuple[str, str]] | None = None):
    """Yields ``(image_id, (method, eps), original, anonymised, stored_digest)`` for a few images of
    a run: each method re-run with the run's own per-image seed, so that the picture is exactly the
    image that was measured (``stored_digest`` is what the run recorded; callers compare).
    ``cells``: only these (method, stored ε), e.g. those a report's table holds."""
    import json

    with StoreReader(run_dir) as store:  # read-only: a report never writes into a run
        seed = store.run_value("seeds", [0])[0]
        executor = store.run_value("executor", {}).get("name")
        if executor in ("processes", "ray"):
            # pool workers run torch on one thread; convolutions summed in another order round
            # differently, and a generator's pixels would differ by a level here and there
            import torch

            torch.set_num_threads(1)
        shown = [c for c in store.measured_cells(seed) if c[1] != "original"
                 and (spec is None or spec.holds(c[1], c[2])) and (cells is None or (c[1], c[2]) in cells)]
        if spec is not None:  # the page's order: the spec's methods, ε ascending

            shown.sort(key=lambda c: _order((c[1], c[2]), spec))
        rows = store.originals()
        picks = rows[:: max(1, len(rows) // n_faces)][:n_faces]
        methods = {}
        for dataset, image_id, path, rec in picks:
            rec = json.loads(rec)
            image = load_image(path)
            faces = [face_from_json(f) for f in rec["faces"]]
            for ds_name, m, e in shown:
                if ds_name != dataset:
                    continue
                measured = store.measured_record(dataset, m, e, seed, image_id)
                if measured is None:
                    continue
                eps = float(e) if e else None
                if (m, eps) not in methods:
                    methods[(m, eps)] = method_registry.create(m, eps)
                res = anonymise(methods[(m, eps)], image, faces, seed, dataset, m, eps, image_id).image
                yield image_id, (m, e), image, faces[rec["primary"]], res, measured.get("digest")


def sample_grid(run_dirs: list[Path], spec: ReportSpec, out: Path, n_faces: int = 4,
                source: Path | None = None, cells: set[tuple[str, str]] | None = None) -> Path | None:
    """Faces x (original, each method and ε) of the first run: the very images it measured (each
    tile is checked against the digest the run stored; a mismatch is framed in red and reported).

    ``source``: another run's store to draw from, for a report whose runs are committed without
    theirs (a store of a whole grid is too large to commit). Seeds are per image (seed, data set,
    method, ε, image id), not per run, so a short run over a few of the images the long runs
    measured draws the same pixels they did, for the same code and weights (the provenance records
    both; checked once on the full-devtest report: the image both grids showed, identical in every
    tile). ``cells``: only these (method, stored ε): a ``source`` may hold cells that the report's
    runs do not (a long run not finished yet), and a tile must show an image the table measured."""
    from PIL import Image

    store = Path(source or run_dirs[0]) / "results.sqlite"
    if not store.is_file():  # a committed run keeps only metrics.csv and summary.md
        print(f"note: no sample grid: {store} is not there (the grid re-runs methods on the run's originals)")
        return None
    by_image: dict[str, list] = {}
    labels: list[str] = []
    mismatches = []
    for image_id, (m, e), image, face, res, digest in measured_samples(store.parent, spec, n_faces, cells):
        crop = _crop_box(face.box, image.shape)
        row = by_image.setdefault(image_id, [_tile(image, crop)])
        tile = _tile(res, crop)
        if digest is not None and image_digest(res) != digest:
            mismatches.append((image_id, m, e))
            tile = tile.copy()
            tile[:3], tile[-3:], tile[:, :3], tile[:, -3:] = (255, 0, 0), (255, 0, 0), (255, 0, 0), (255, 0, 0)
        row.append(tile)
        label = cell_label(spec.label(m), e, greek=_label_font() is not None)
        if label not in labels:
            labels.append(label)
    rows = [r for r in by_image.values() if len(r) == len(labels) + 1]
    if not rows:
        return None
    if mismatches:
        print(f"warning: {len(mismatches)} sample tiles differ from what the run measured: {mismatches[:3]}")
    path = out / "samples.png"
    Image.fromarray(_with_header(np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0),
                                 ["original"] + labels)).save(path)
    return path


def _crop_box(box, shape, margin=0.6):
    x0, y0, x1, y1 = box
    s = max(x1 - x0, y1 - y0) * (1 + margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return [int(max(0, cx - s / 2)), int(max(0, cy - s / 2)), int(min(shape[1], cx + s / 2)),
            int(min(shape[0], cy + s / 2))]


def _tile(image, crop, size=128):
    from PIL import Image

    x0, y0, x1, y1 = crop
    return np.asarray(Image.fromarray(image[y0:y1, x0:x1]).resize((size, size), Image.BICUBIC))


@functools.lru_cache(maxsize=1)  # asked once per tile: load the file once
def _label_font():
    """matplotlib's DejaVu Sans (it has ε and ∞; PIL's default bitmap font has neither), or PIL's default."""
    from PIL import ImageFont

    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 12)
    except (ImportError, OSError):
        return None


def wrap_label(label: str, fits) -> list[str]:
    """``label`` in lines that each ``fits(line)`` (a column head under its tile), broken after a
    bracket, comma or ``=`` where it can (a long method spec), else between characters.

    >>> wrap_label("kpdp[blend=poisson,generator=v3]", lambda t: len(t) <= 12)
    ['kpdp[blend=', 'poisson,', 'generator=', 'v3]']
    >>> wrap_label("weights=/a/very/long/path.safetensors]", lambda t: len(t) <= 12)
    ['weights=', '/a/very/long', '/path.safete', 'nsors]']
    """
    tokens, token = [], ""
    for ch in label:
        token += ch
        if ch in "[,=":
            tokens.append(token)
            token = ""
    tokens += [token] if token else []
    lines, line = [], ""
    for tok in tokens:
        if line and not fits(line + tok):
            lines.append(line)
            line = ""
        line += tok
        while len(line) > 1 and not fits(line):  # wider than the tile on its own: break it anywhere
            cut = max([i for i in range(1, len(line)) if fits(line[:i])] or [1])
            lines.append(line[:cut])
            line = line[cut:]
    return lines + ([line] if line else [])


def _with_header(grid, labels, tile=128):
    from PIL import Image, ImageDraw

    font = _label_font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    heads = [wrap_label(label, lambda t: measure.textlength(t, font=font) <= tile - 6) for label in labels]
    height = 14 * max(len(h) for h in heads) + 6
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + height), "white")
    canvas.paste(Image.fromarray(grid), (0, height))
    draw = ImageDraw.Draw(canvas)
    for k, lines in enumerate(heads):
        for j, line in enumerate(lines):
            draw.text((k * tile + 3, 2 + 14 * j), line, fill="black", font=font)
    return np.asarray(canvas)


def contact_sheet(dataset, indices: list[int], cells: list[tuple[str, float | None]], out: Path, seed: int = 0,
                  device: str = "cpu") -> Path:
    """Faces (rows) under each (method, ε) (columns), for a person to look at. Faces are found on
    the originals as in `bench run`; every method gets the same faces and per-image seed."""
    from PIL import Image

    cells = [c for c in cells if c[0] != "original"]  # the first column is always the original
    finder = FaceFinder(device=device)
    methods = {c: method_registry.create(c[0], c[1], device) for c in cells}
    rows = []
    for i in indices:
        s = dataset[i]
        image = load_image(s.path)
        faces = finder.all_faces(image)
        if not faces:
            print(f"note: sheet: no face found in image {i} ({s.image_id}): no row for it", file=sys.stderr)
            continue
        crop = _crop_box(faces[primary_index(faces, image.shape)].box, image.shape)
        row = [_tile(image, crop)]
        for (m, e), meth in methods.items():
            res = anonymise(meth, image, faces, seed, dataset.name, m, e, s.image_id).image
            row.append(_tile(res, crop))
        rows.append(np.concatenate(row, axis=1))
    if not rows:
        raise ValueError(f"sheet: no face found in any of the images {indices}")
    labels = ["original"] + [cell_label(m, e, greek=_label_font() is not None) for m, e in cells]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_with_header(np.concatenate(rows, axis=0), labels)).save(out)
    return Path(out)
