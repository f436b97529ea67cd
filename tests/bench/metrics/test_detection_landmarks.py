import numpy as np
import pytest

from bench.metrics import detection_rate, iou, landmark_nme, nme


@pytest.mark.parametrize("other,expected_hit", [
    ([0, 0, 10, 20], True),     # IoU exactly 0.5: counts
    ([0, 0, 10, 21], False),    # just below 0.5
    ([0, 0, 10, 10], True),
    ([20, 20, 30, 30], False),
])
def test_iou_at_the_boundary(other, expected_hit):
    ref = np.array([0, 0, 10, 10])
    assert (iou(np.array(other, float), ref) >= 0.5) is expected_hit
    assert detection_rate([[np.array(other, float)]], [ref]).value == float(expected_hit)


def test_iou_exact_value():
    assert iou(np.array([0, 0, 10, 10]), np.array([0, 0, 10, 20])) == 0.5


def test_nme_known_answers():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 100, (68, 2))
    d = np.linalg.norm(ref[36] - ref[45])
    assert nme(ref, ref) == 0.0
    assert nme(ref + [3.0, 4.0], ref) == pytest.approx(5.0 / d)
    mean, fail = landmark_nme([ref + [3.0, 4.0], None, ref], [ref, ref, ref])
    assert mean.value == pytest.approx(2.5 / d) and mean.n == 2 and fail.value == pytest.approx(1 / 3)

