"""Hands in front of faces (kpdp.faces.hands), on photos of the committed LFW sample."""
import hashlib

import numpy as np
import pytest

from kpdp.faces.hands import ASSETS, HandFinder, hand_mask, in_front_of, model_hashes
from tests.conftest import LFW_ROOT, needs_lfw

HAND_OVER_MOUTH = "Celine_Dion/Celine_Dion_0003"  # a hand over her nose and mouth
PALMS_ON_FACES = ("Tom_Daschle/Tom_Daschle_0001", "Robert_De_Niro/Robert_De_Niro_0003")  # no hand in either


@pytest.fixture(scope="module")
def finder():
    return HandFinder()


@pytest.fixture(scope="module")
def photo(sample, sample_landmarks):
    """(RGB image, its 68 dlib landmarks) of a sample photo, by image id."""
    from kpdp.datasets import load_image

    ids = list(sample_landmarks["image_id"])

    def load(image_id):  # a photo of the sample's folder; its landmarks where the sample lists it
        landmarks = sample_landmarks["landmarks"][ids.index(image_id)] if image_id in ids else None
        return load_image(sample.root / "lfw-deepfunneled" / f"{image_id}.jpg"), landmarks

    return load


def test_the_committed_models_are_the_recorded_files():
    for name, sha in model_hashes().items():
        assert hashlib.sha256((ASSETS / name).read_bytes()).hexdigest() == sha, name


def test_the_hand_over_a_mouth_is_found_where_it_is(finder, photo):
    image, landmarks = photo(HAND_OVER_MOUTH)
    hands = finder.find(image)
    assert len(hands) == 1 and hands[0].score > 0.9
    covered = finder.mask(image)
    inside = covered[landmarks[:, 1].astype(int).clip(0, 249), landmarks[:, 0].astype(int).clip(0, 249)]
    assert inside[48:68].mean() >= 0.6  # the mouth, behind the fingers
    assert inside[36:48].mean() == 0  # the eyes, above them
    assert 0.02 < covered.mean() < 0.15  # a hand, not the photo


def test_the_landmarks_turn_with_the_photo(finder, photo):
    """The rotated hand box (wrist to middle finger upright) and the landmarks mapped back through it:
    a photo turned by 90 degrees gives the same hand, turned."""
    image, _ = photo(HAND_OVER_MOUTH)
    upright = finder.find(image)[0].landmarks
    turned = finder.find(np.ascontiguousarray(np.rot90(image)))[0].landmarks  # (x, y) -> (y, w - 1 - x)
    expected = np.stack([upright[:, 1], image.shape[1] - 1 - upright[:, 0]], axis=1)
    palm_width = np.linalg.norm(upright[5] - upright[17])
    assert np.abs(turned - expected).max() < 0.25 * palm_width


@pytest.mark.parametrize("image_id", PALMS_ON_FACES)
def test_a_palm_found_on_a_face_is_refused_by_the_hand_network(finder, photo, image_id):
    """The palm detector fires on these faces; kept, such a 'hand' would leave part of the face unmasked."""
    image, _ = photo(image_id)
    assert finder.palms(image)
    assert finder.find(image) == []


HAND = np.array([[50, 90], [40, 80], [35, 70], [32, 60], [30, 52], [45, 60], [45, 45], [45, 35], [45, 28],
                     [52, 60], [52, 43], [52, 32], [52, 24], [59, 60], [59, 45], [59, 35], [59, 28], [65, 62],
                     [66, 50], [66, 43], [66, 38]], float)  # upright, wrist at (50, 90), 66 px tall


def test_a_hand_mask_is_the_palm_and_the_fingers():
    mask = hand_mask([HAND], (100, 100))
    assert mask[75, 52] and mask[26, 52]  # the palm, the middle fingertip
    assert not mask[10, 52] and not mask[75, 90]  # beyond the fingertip, beside the hand
    assert hand_mask([], (100, 100)).sum() == 0


def test_only_a_hand_large_enough_and_reaching_in_from_outside_the_face_is_in_front_of_it(sample_landmarks):
    face = sample_landmarks["landmarks"][0].astype(float)
    eye_distance = np.linalg.norm(face[36:42].mean(0) - face[42:48].mean(0))
    chin = face[8]
    scale = 2.0 * eye_distance / np.linalg.norm(HAND.max(0) - HAND.min(0))  # two eye distances large

    def placed(wrist_at, s=scale):
        return (HAND - HAND[0]) * s + wrist_at

    assert in_front_of(placed(chin + [0, 0.5 * eye_distance]), face)  # wrist below the chin: a hand to the mouth
    assert not in_front_of(placed(face[30]), face)  # wrist on the nose: a hand does not grow out of a face
    assert not in_front_of(placed(chin + [0, 0.5 * eye_distance], scale / 3), face)  # far smaller than the face


@needs_lfw
def test_a_cheek_the_hand_network_takes_for_a_hand_is_not_in_front_of_the_face():
    """Al_Davis_0001: the hand network accepts his cheek (presence 0.96); kept, it would leave the cheek unmasked."""
    from kpdp.datasets import load_image
    from kpdp.failclosed import find_faces

    image = load_image(LFW_ROOT / "lfw-deepfunneled" / "Al_Davis" / "Al_Davis_0001.jpg")
    face = max(find_faces(image, "cpu"), key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    finder = HandFinder()
    assert len(finder.find(image)) == 1
    assert finder.mask(image).any() and not finder.mask(image, face.landmarks).any()


def test_weighted_suppression_merges_overlapping_palms_and_keeps_each_groups_best_score():
    from kpdp.faces.hands import _weighted_nms

    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    merged = _weighted_nms(boxes, np.array([0.9, 0.8, 0.7]))
    assert len(merged) == 2
    (first, s1), (second, s2) = merged
    assert s1 == 0.9 and s2 == 0.7  # not the second-best score overall (0.8, of the first group)
    assert np.allclose(first, (boxes[0] * 0.9 + boxes[1] * 0.8) / 1.7) and np.allclose(second, boxes[2])


def test_a_degenerate_palm_box_does_not_stall_the_suppression():
    from kpdp.faces.hands import _weighted_nms

    merged = _weighted_nms(np.array([[5, 5, 5, 9], [0, 0, 10, 10]], float), np.array([0.9, 0.8]))
    assert len(merged) == 2  # the zero-width box is its own group (its IoU with itself is 0)


def test_grey_rgba_and_empty_images_are_read(finder, photo):
    image, _ = photo(HAND_OVER_MOUTH)
    grey = image.mean(-1).astype(np.uint8)
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    assert isinstance(finder.find(grey), list)  # read, not refused (the hand models are trained on colour)
    assert len(finder.find(rgba)) == 1
    assert finder.find(np.zeros((0, 0, 3), np.uint8)) == []
