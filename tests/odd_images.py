"""Builders of the odd image files every loader and the harness must survive."""
from pathlib import Path

import numpy as np
from PIL import Image


def make_odd_images(folder: Path, face: np.ndarray) -> dict[str, str]:
    """Write one file per case; returns {file name: what it is}. ``face`` is an RGB face photo."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = {}

    def put(name, what):
        cases[name] = what

    (folder / "zero.jpg").write_bytes(b""); put("zero.jpg", "zero-byte file")
    (folder / "text.jpg").write_text("this is not an image\n"); put("text.jpg", "text named .jpg")
    buf = folder / "full.jpg"
    Image.fromarray(face).save(buf, quality=90)
    (folder / "corrupt.jpg").write_bytes(buf.read_bytes()[: len(buf.read_bytes()) // 3]); buf.unlink()
    put("corrupt.jpg", "truncated JPEG")
    rgba = np.dstack([face, np.full(face.shape[:2], 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png"); put("alpha.png", "PNG with alpha")
    Image.fromarray(face).convert("CMYK").save(folder / "cmyk.jpg"); put("cmyk.jpg", "CMYK JPEG")
    g16 = (np.asarray(Image.fromarray(face).convert("L"), np.uint16) * 257)
    Image.fromarray(g16).save(folder / "gray16.png"); put("gray16.png", "16-bit PNG")
    Image.fromarray(face).convert("L").save(folder / "gray.jpg"); put("gray.jpg", "grayscale JPEG")
    Image.new("1", (20000, 20000)).save(folder / "huge.png"); put("huge.png", "20000 x 20000 image")
    Image.fromarray(face).resize((16, 16)).save(folder / "tiny.png"); put("tiny.png", "16 x 16 image")
    Image.fromarray(np.full((250, 250, 3), 127, np.uint8)).save(folder / "noface.png"); put("noface.png", "no face")
    three = np.concatenate([face, face, face], axis=1)
    Image.fromarray(three).save(folder / "three.jpg"); put("three.jpg", "three faces")
    return cases
