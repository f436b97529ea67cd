"""A reconstruction grid for a person to look at: one row per face, and per method the anonymised
face beside what each reconstruction attacker made of it (original | anonymised | recon-wiener |
recon-learned | ...); a tile an attacker cannot make (no known operator) is grey and says so.
``scripts/recon_grid.py`` fills it from the embedded LFW sample."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HEADER = 34  # px: two lines of labels
GAP = 6  # px between the original and each method's block


def face_tile(image: np.ndarray, box, size: int = 112, margin: float = 0.5) -> np.ndarray:
    """A ``size`` px square around the face box (grown by ``margin`` of its size), clipped."""
    x0, y0, x1, y1 = (float(v) for v in box)
    s = max(x1 - x0, y1 - y0) * (1 + margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = image.shape[:2]
    c = [int(max(0, cx - s / 2)), int(max(0, cy - s / 2)), int(min(w, cx + s / 2)), int(min(h, cy + s / 2))]
    return np.asarray(Image.fromarray(np.asarray(image, np.uint8)[c[1]:c[3], c[0]:c[2]]).resize((size, size),
                                                                                             Image.BICUBIC))


def _font(size: int = 11):
    """matplotlib's DejaVu Sans (PIL's bitmap font has no ε), else PIL's default."""
    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def _missing(size: int, text: str) -> np.ndarray:
    tile = Image.new("RGB", (size, size), (200, 200, 200))
    ImageDraw.Draw(tile).text((6, size // 2 - 7), text, fill="black", font=_font())
    return np.asarray(tile)


def render_grid(rows: list[list], groups: list[tuple[str, list[str]]], out, tile: int = 112,
                missing: str = "not applicable") -> Path:
    """Write a PNG of ``rows`` (each: the original's tile, then one tile per column of every group,
    None where there is none) under two header lines: each group's name over its columns, and the
    columns' names. ``groups``: [("", ["original"]), ("blur", ["anonymised", "recon-wiener", ...]), ...]."""
    widths = [len(cols) for _, cols in groups]
    if any(len(r) != sum(widths) for r in rows):
        raise ValueError(f"every row needs {sum(widths)} tiles, one per column")
    width = sum(widths) * tile + GAP * (len(groups) - 1)
    canvas = Image.new("RGB", (width, HEADER + len(rows) * tile), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    x = 0
    starts = []
    for name, cols in groups:
        starts.append(x)
        draw.text((x + 3, 2), name, fill="black", font=font)
        for k, col in enumerate(cols):
            draw.text((x + k * tile + 3, 17), col, fill=(60, 60, 60), font=font)
        x += len(cols) * tile + GAP
    for r, row in enumerate(rows):
        k = 0
        for g, (_, cols) in enumerate(groups):
            for j in range(len(cols)):
                t = row[k] if row[k] is not None else _missing(tile, missing)
                canvas.paste(Image.fromarray(np.asarray(t, np.uint8)), (starts[g] + j * tile, HEADER + r * tile))
                k += 1
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
