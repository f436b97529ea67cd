"""Hands in a photo, found with no network: MediaPipe's palm detector and hand-landmark network.

Why here: a face partly hidden by a hand should keep the hand (issue 35: "what covers the face
outside the drawn region is not painted over where the mask can avoid it"). No face-parsing model
runs offline on these machines (``shared/docs/offline-stack.md``); MediaPipe's hand models do: the
two TFLite files come from the ``mediapipe`` 0.10.21 wheel (Apache-2.0; that wheel pins numpy<2,
so the files are committed in ``kpdp/assets`` with their hashes and run by Google's LiteRT
interpreter, ``ai-edge-litert``). Their pipeline is rebuilt from MediaPipe's published graphs
(``hand_landmark_cpu``, ``palm_detection_cpu``): anchors, letterbox, weighted non-maximum
suppression, the rotated hand box, and the 21 landmarks mapped back.

Caveats: MediaPipe's models were trained on hands at arm's length and in front of a camera; a
hand that only touches the frame's edge, or a fist seen from its side, may not be found (a miss
paints the hand over, as before). Hands are not faces' only occluders: objects and hair are not
found here.

Example:
    >>> import numpy as np
    >>> HandFinder().find(np.zeros((120, 160, 3), np.uint8))
    []
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PALM_MODEL = ASSETS / "palm_detection_full.tflite"
LANDMARK_MODEL = ASSETS / "hand_landmark_full.tflite"
PALM_SIZE, LANDMARK_SIZE = 192, 224

# the bones drawn as thick lines (MediaPipe's 21-point hand: 0 wrist, 1-4 thumb, 5-8 index ... 17-20 little)
FINGERS = ((0, 1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (0, 17, 18, 19, 20))
PALM = (0, 1, 5, 9, 13, 17)


def _palm_anchors() -> np.ndarray:
    """(2016, 2) anchor centres of palm_detection_full, in [0, 1]: SSD anchors of strides 8 (24 x 24
    cells, 2 anchors each) and 16 (12 x 12 cells, 6 anchors: three layers of 2), fixed size 1."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        n = PALM_SIZE // stride
        ys, xs = np.mgrid[0:n, 0:n]
        cell = np.stack([(xs + 0.5) / n, (ys + 0.5) / n], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(cell, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_min: float = 0.3) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's WEIGHTED suppression: each kept detection is the score-weighted mean of those it
    overlaps (boxes as x0, y0, x1, y1 followed by the keypoints). Returns (merged row, its best score)."""
    order, kept = list(np.argsort(-scores)), []
    while order:
        top = boxes[order[0], :4]
        rest = boxes[order, :4]
        inter = (np.clip(np.minimum(rest[:, 2], top[2]) - np.maximum(rest[:, 0], top[0]), 0, None)
                 * np.clip(np.minimum(rest[:, 3], top[3]) - np.maximum(rest[:, 1], top[1]), 0, None))
        area = (rest[:, 2] - rest[:, 0]) * (rest[:, 3] - rest[:, 1])
        iou = inter / np.maximum(area + (top[2] - top[0]) * (top[3] - top[1]) - inter, 1e-9)
        # the top is in its own group even when its box is degenerate (its IoU with itself then 0)
        group = [order[0]] + [order[i + 1] for i in np.flatnonzero(iou[1:] > iou_min)]
        w = scores[group][:, None]
        kept.append(((boxes[group] * w).sum(0) / w.sum(), float(scores[order[0]])))
        order = [o for o in order if o not in group]
    return kept


@dataclass
class Hand:
    """One hand: its 21 landmarks in image pixels (x, y) and the landmark network's presence score."""

    landmarks: np.ndarray
    score: float


class HandFinder:
    """Palm detection, then 21 landmarks per palm, on an RGB uint8 image of any size."""

    def __init__(self, min_palm_score: float = 0.5, min_hand_score: float = 0.5, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        for path in (PALM_MODEL, LANDMARK_MODEL):
            if not path.is_file():
                raise FileNotFoundError(f"hand model {path} is missing (it ships in kpdp/assets)")
        self.palm = Interpreter(model_path=str(PALM_MODEL), num_threads=threads)
        self.marks = Interpreter(model_path=str(LANDMARK_MODEL), num_threads=threads)
        for net in (self.palm, self.marks):
            net.allocate_tensors()
        self.anchors = _palm_anchors()
        self.min_palm_score, self.min_hand_score = min_palm_score, min_hand_score

    @staticmethod
    def _run(net, x: np.ndarray) -> dict[str, np.ndarray]:
        net.set_tensor(net.get_input_details()[0]["index"], x[None].astype(np.float32))
        net.invoke()
        return {d["name"]: net.get_tensor(d["index"])[0] for d in net.get_output_details()}

    def palms(self, image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Palm boxes (x0, y0, x1, y1), their 7 keypoints (7, 2) in image pixels, and scores."""
        h, w = image.shape[:2]
        side = max(h, w)  # letterbox: the whole image, centred, aspect kept
        scale = PALM_SIZE / side
        pad_x, pad_y = (side - w) / 2, (side - h) / 2
        m = np.float32([[scale, 0, pad_x * scale], [0, scale, pad_y * scale]])
        x = cv2.warpAffine(image, m, (PALM_SIZE, PALM_SIZE), flags=cv2.INTER_LINEAR, borderValue=0) / 255.0
        out = self._run(self.palm, x)
        raw, logits = out["Identity"], out["Identity_1"][:, 0]
        scores = 1 / (1 + np.exp(-np.clip(logits, -100, 100)))
        keep = (scores >= self.min_palm_score) & (raw[:, 2] > 0) & (raw[:, 3] > 0)  # a box with no area is no palm
        if not keep.any():
            return []
        raw, anchors, scores = raw[keep] / PALM_SIZE, self.anchors[keep], scores[keep]
        cx, cy = raw[:, 0] + anchors[:, 0], raw[:, 1] + anchors[:, 1]
        bw, bh = raw[:, 2], raw[:, 3]
        kps = raw[:, 4:18].reshape(-1, 7, 2) + anchors[:, None, :]
        rows = np.concatenate([np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1),
                               kps.reshape(-1, 14)], axis=1)
        merged = _weighted_nms(rows, scores)
        found = []
        for row, score in merged:
            pts = row.reshape(-1, 2) * side - [pad_x, pad_y]  # letterbox removed, image pixels
            found.append((pts[:2].reshape(-1), pts[2:], float(score)))
        return found

    @staticmethod
    def hand_box(box: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, float, float]:
        """The rotated square the landmark network reads: centre (x, y), side, rotation (radians),
        from a palm (MediaPipe: wrist-to-middle-finger upright, shifted half a palm towards the
        fingers, 2.6 palms wide)."""
        x0, y0, x1, y1 = box
        wrist, middle = keypoints[0], keypoints[2]
        rotation = np.pi / 2 - np.arctan2(-(middle[1] - wrist[1]), middle[0] - wrist[0])
        rotation = (rotation + np.pi) % (2 * np.pi) - np.pi
        cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        cx += bh * 0.5 * np.sin(rotation)  # shift_y = -0.5 of the height, turned with the hand
        cy -= bh * 0.5 * np.cos(rotation)
        return np.array([cx, cy]), max(bw, bh) * 2.6, rotation

    def find(self, image: np.ndarray) -> list[Hand]:
        """Every hand found in an RGB uint8 image (grey and RGBA are read as RGB): 21 landmarks each,
        in image pixels."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        image = image[..., :3]
        if min(image.shape[:2]) == 0:
            return []
        hands = []
        for box, keypoints, _ in self.palms(image):
            centre, side, rotation = self.hand_box(box, keypoints)
            c, s = np.cos(rotation), np.sin(rotation)
            # crop pixel (u, v) -> image: centre + R(rotation) . ((u, v) / size - 0.5) * side
            to_image = np.float32([[c * side / LANDMARK_SIZE, -s * side / LANDMARK_SIZE, 0],
                                   [s * side / LANDMARK_SIZE, c * side / LANDMARK_SIZE, 0]])
            to_image[:, 2] = centre - to_image[:, :2] @ [LANDMARK_SIZE / 2, LANDMARK_SIZE / 2]
            crop = cv2.warpAffine(image, cv2.invertAffineTransform(to_image), (LANDMARK_SIZE, LANDMARK_SIZE),
                                  flags=cv2.INTER_LINEAR, borderValue=0) / 255.0
            out = self._run(self.marks, crop)
            score = float(out["Identity_1"][0])
            if score < self.min_hand_score:
                continue
            uv = out["Identity"].reshape(21, 3)[:, :2]
            hands.append(Hand(uv @ to_image[:, :2].T + to_image[:, 2], score))
        return hands

    def mask(self, image: np.ndarray, face_landmarks: np.ndarray | None = None,
             found: list[Hand] | None = None) -> np.ndarray:
        """uint8 mask (1 = hand) of every hand found (:func:`hand_mask` of :meth:`find`, or of ``found``,
        hands already found in this image); given a face's 68 landmarks, of the hands that can be in
        front of that face only (:func:`in_front_of`)."""
        hands = [h.landmarks for h in (self.find(image) if found is None else found)]
        if face_landmarks is not None:
            hands = [h for h in hands if in_front_of(h, face_landmarks)]
        return hand_mask(hands, image.shape[:2])


def in_front_of(hand: np.ndarray, face: np.ndarray, min_size: float = 1.2, wrist_out: float = 0.25,
                forehead: float = 0.45) -> bool:
    """Whether a hand (21 landmarks) can be in front of a face (68 landmarks), by two physical limits,
    in units of the face's eye distance: a hand at the face's depth or nearer is about as large as the
    face or larger (the diagonal of its landmarks' box >= ``min_size``), and it reaches in from an arm,
    so its wrist lies outside the face (>= ``wrist_out`` beyond the hull of the 68 points with the brows
    raised by ``forehead`` x the brow-to-chin height: the anonymiser's mask reaches the hairline).

    Why: the hand network accepts a few parts of faces as hands (with presence scores up to 0.96) and a
    false hand *on* a face would keep that part of the face unmasked. On 300 LFW devtest photos with a
    hand over the drawn face, the three false ones (a cheek, a nose, an ear) were 0.69-1.62 eye
    distances large with the wrist 0.28 inside to 0.06 outside the 68-point hull; the other 18 (hands by
    eye, two of them unclear) 1.44-3.22 large with the wrist 0.58-3.12 outside it."""
    face = np.asarray(face, np.float64)
    eye_distance = np.linalg.norm(face[36:42].mean(0) - face[42:48].mean(0))
    size = np.linalg.norm(hand.max(0) - hand.min(0)) / eye_distance
    up = face[17:27].mean(0) - face[8]  # chin to brows
    outline = np.vstack([face, face[17:27] + forehead * up])
    hull = cv2.convexHull(outline.astype(np.float32))
    inside = cv2.pointPolygonTest(hull, (float(hand[0][0]), float(hand[0][1])), True) / eye_distance
    return bool(size >= min_size and inside <= -wrist_out)


def hand_mask(hands: list[np.ndarray], shape: tuple[int, int], width: float = 0.45) -> np.ndarray:
    """The silhouette of hands given by their 21 landmarks: the palm polygon filled and each finger's
    bones drawn ``width`` x the palm's width (index to little knuckle) thick."""
    out = np.zeros(shape, np.uint8)
    for pts in hands:
        pts = np.asarray(pts, np.float64)
        palm_width = np.linalg.norm(pts[5] - pts[17])
        thick = max(int(round(width * palm_width)), 1)
        cv2.fillPoly(out, [np.round(pts[list(PALM)]).astype(np.int32)], 1)
        for chain in FINGERS:
            cv2.polylines(out, [np.round(pts[list(chain)]).astype(np.int32)], False, 1, thick)
        cv2.polylines(out, [np.round(pts[list(PALM)]).astype(np.int32)], True, 1, thick)
    return out


def model_hashes() -> dict[str, str]:
    """sha256 of the two committed model files, as recorded in ``assets/hand_models.json``."""
    return json.loads((ASSETS / "hand_models.json").read_text())["sha256"]
