"""scripts/noise_draws.py: two draws of one face that differ only in the generator's noise."""
import numpy as np

from kpdp.datasets import get_dataset, load_image
from kpdp.faces.analyze import FaceFinder
from kpdp.inpaint import FaceInpainter
from scripts.noise_draws import draw_difference, main


def test_the_same_noise_draws_the_same_face_and_other_noise_another(capsys):
    image = load_image(list(get_dataset("lfw-sample", None, "devtest").samples)[0].path)
    landmarks = FaceFinder().primary(image).landmarks
    inpainter = FaceInpainter("sparse7+dense68", None, "cpu", mask_kind="ellipse")
    same, _ = draw_difference(inpainter, image, landmarks, seeds=(3, 3))
    other, _ = draw_difference(inpainter, image, landmarks, seeds=(3, 4))
    assert same == 0 and 0.5 < other < 20  # v3 step 2452 uses its noise a little (~2.6 levels on LFW faces)
    assert main(["--dataset", "lfw-sample", "--n", "2", "--every", "100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("shipped: mean |draw 1 - draw 2| inside the mask") and np.isfinite(
        float(out.split("cosine of the two draws ")[1]))
