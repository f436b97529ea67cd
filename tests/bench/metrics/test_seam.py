"""Seam step (bench/metrics/seam.py): a paste lighter or greyer than its surroundings scores its
step in grey levels, one that continues the original's shading scores near 0, sectors do not cancel,
an unchanged image has no seam."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from bench.metrics import seam


def _ellipse(image):
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.ellipse(mask, (125, 130), (55, 70), 0, 0, 360, 1, -1)
    return mask.astype(bool)


def _shifted(image, inside, levels):
    """``image`` with the region ``inside`` drawn ``levels`` grey levels lighter."""
    out = image.copy()
    out[inside] = np.clip(image[inside].astype(int) + levels, 0, 255)
    return out


def test_a_grey_paste_a_lighter_face_and_a_seamless_paste(face_image):
    image, _ = face_image
    inside = _ellipse(image)
    grey = image.copy()
    grey[inside] = 128
    lighter, seamless = _shifted(image, inside, 30), _shifted(image, inside, 1)
    assert seam.seam_step(image, grey) > 10
    assert 20 < seam.seam_step(image, lighter) <= 31
    assert seam.seam_step(image, seamless) < 1.5
    assert seam.seam_step(image, image.copy()) is None


def test_one_side_lighter_and_the_other_darker_do_not_cancel(face_image):
    image, _ = face_image
    inside = _ellipse(image)
    left = np.zeros_like(inside)
    left[:, :125] = True
    two_tone = image.astype(int)
    two_tone[inside & left] += 30
    two_tone[inside & ~left] -= 30
    two_tone = np.clip(two_tone, 0, 255).astype(np.uint8)
    assert seam.seam_step(image, two_tone) > 20


def test_the_rings_lie_on_each_side_of_the_edge():
    changed = np.zeros((40, 40), bool)
    changed[10:30, 10:30] = True
    inner, outer, width = seam.rings(changed, 3)
    assert width == 3 and inner[10, 20] and inner[12, 20] and not inner[20, 20]
    assert outer[8, 20] and not outer[10, 20] and not outer[0, 20]


def test_the_edge_ratio_reads_a_halo_above_the_original_and_a_blurred_edge_below(face_image):
    image, _ = face_image
    inside = _ellipse(image)
    lighter, seamless = _shifted(image, inside, 30), _shifted(image, inside, 1)
    halo = image.astype(int)  # a light rim just inside the edge, the face itself untouched in tone
    rim = inside & ~cv2.erode(inside.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    halo[rim] += 40
    halo[inside & ~rim] += 1
    halo = np.clip(halo, 0, 255).astype(np.uint8)
    blurred = image.copy()
    blurred[inside] = cv2.GaussianBlur(image, (0, 0), 6)[inside]

    def ratio(anonymised):
        a, o = seam.seam_energies(image, anonymised)
        return a / o

    assert 0.9 < ratio(seamless) < 1.1
    assert ratio(lighter) > 1.3 and ratio(halo) > 1.3  # both past "within 20 % of the original"
    assert ratio(blurred) < 1.0
    assert seam.seam_energies(image, image.copy()) is None


def test_the_edge_ratio_is_the_ratio_of_the_means_with_an_interval():
    records = [{"seam_step": 1.0, "seam_edge_energy": [a, o]} for a, o in [(4, 2), (6, 2), (3, 3), (5, 1)]]
    records.append({"seam_step": None, "seam_edge_energy": None})  # nothing changed: left out of both
    cell = SimpleNamespace(probe_records=lambda: records, probe_identities=np.array([0, 1, 2, 3, 4]), boot_seed=0)
    rows = {r.metric: r for r in seam.SeamGroup().aggregate(cell)}
    ratio = rows["seam_edge_ratio"]
    assert ratio.value == 18 / 8 and ratio.n == 4
    assert ratio.ci_low < ratio.value < ratio.ci_high


def test_the_edge_ratio_pairs_as_a_ratio_of_means_on_the_images_both_cells_measured():
    def cell(energies):
        probes = [(f"i{k}", {"seam_step": 1.0, "seam_edge_energy": e}, {}) for k, e in enumerate(energies)]
        return SimpleNamespace(probes=probes, probe_identities=np.array(["p", "p", "q", "r"][:len(probes)]),
                               boot_seed=0, probe_records=lambda: [p[1] for p in probes])

    a = cell([[2.0, 4.0], [1.0, 2.0], [3.0, 3.0], [1.0, 1.0]])
    b = cell([[1.0, 4.0], [1.0, 2.0], [3.0, 3.0], [1.0, 1.0]])
    paired = seam.SeamGroup().paired(a, b, 200, 0)
    ratio = paired[("seam_edge_ratio", "")]
    assert ratio.a == pytest.approx(7 / 10) and ratio.b == pytest.approx(6 / 10) and ratio.n == 4
    own = [r for r in seam.SeamGroup().aggregate(a) if r.metric == "seam_edge_ratio"][0]
    assert own.value == pytest.approx(ratio.a)
    assert (ratio.replicates[:, 0] >= ratio.replicates[:, 1]).all()  # A's edge is the sharper in every draw
    same = seam.SeamGroup().paired(a, a, 200, 0)[("seam_edge_ratio", "")]
    assert (same.replicates[:, 0] == same.replicates[:, 1]).all()
