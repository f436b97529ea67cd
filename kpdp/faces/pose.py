"""Head pose (yaw, pitch, roll, degrees) from 68 iBUG landmarks: a perspective-n-point fit of a 3D
mean face to the points.

Sign conventions (the head as the camera sees it; image axes x right, y down):

- ``yaw > 0``: the face turns toward the image's right (the nose tip moves right of the eyes; the
  person turns to their own left).
- ``pitch > 0``: the face tilts up (the nose tip moves up in the image, the chin forward).
- ``roll > 0``: the face rotates clockwise in the image (the eye on the image's right is lower);
  for a frontal face it is ``atan2(y45 - y36, x45 - x36)``.

A left-right mirror of the image negates yaw and roll and keeps pitch. Zero pose: the face's
eye-mouth plane (outer eye corners 36, 45 and mouth corners 48, 54) parallel to the image and
upright. The rotation is ``R = Rz(roll) · Ry(-yaw) · Rx(-pitch)`` in OpenCV camera axes (x right, y
down, z away from the camera), model point ``X`` seen at ``R X + t``.

Camera: a pinhole with focal length = image width in pixels and the principal point at the centre
of the pixel grid, ``((w - 1) / 2, (h - 1) / 2)`` (landmarks are in pixel-centre coordinates, so a
mirrored image is exactly a mirrored camera), no distortion. The fit is ``cv2.SOLVEPNP_SQPNP``
(globally optimal, needs no initial guess) refined by Levenberg-Marquardt on the reprojection error.

The 3D mean face (:data:`MEAN_FACE_68`, millimetres) was derived for this project, not copied: a
rigid Tomasi-Kanade factorisation (scaled orthography, metric upgrade) of the dlib 68-point
landmarks (the project's ``FaceFinder``: dlib HOG, else MTCNN, then ``shape_predictor_68``) of
1,191 LFW *devtrain* images (every eighth; identity-disjoint from devtest), see
:func:`derive_mean_face`; then put in the frame above, made exactly left-right symmetric and scaled
to an outer-eye-corner distance of 90 mm (adult ex-ex breadth). The table is the output of::

    python -m kpdp.faces.pose derive lfw_devtrain_every8.npz

where the ``.npz`` (sha256 76c98488…) is ``kpdp.landmark_cache.extract_landmarks(get_dataset("lfw",
root, split="devtrain"), shard=(0, 8))``. The commonly used alternative, OpenFace's
``In-the-wild_aligned_PDM_68.txt`` (also shipped as ``assets/model.txt`` by the MIT-licensed
yinguobing/head-pose-estimation, which credits OpenFace for it), is under OpenFace's academic
non-commercial licence, so it is not included. Put in the same frame, the derived shape is 7.8 %
of the eye-corner distance from it (RMS after a similarity alignment; mostly depth: the nose tip
35 mm in front of the outer eye corners here, 38 mm there); on the 256 faces of ``lfw-sample`` the
two give yaw and roll 2.0° and 0.3° apart (median) and pitch a 4.5° constant offset.

Example:
    >>> shape = (250, 250)
    >>> pts = project_mean_face(HeadPose(20.0, -10.0, 5.0), shape)
    >>> [round(a, 1) for a in head_pose(pts, shape)]
    [20.0, -10.0, 5.0]
    >>> [round(a, 1) for a in head_pose(mirror_landmarks(pts, shape[1]), shape)]
    [-20.0, -10.0, -5.0]
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: iBUG 68 index of each point's left-right counterpart (jaw, brows, nose, eyes, outer and inner lips)
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + list(range(35, 30, -1))
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65])

#: points that move with the skull: nose, eyes and mouth corners (see :func:`derive_mean_face`)
RIGID_POINTS = np.r_[27:48, 48, 54]

EYE_CORNER_MM = 90.0  # outer eye corner distance of the mean face (adult exocanthion breadth)

#: 3D mean face of the 68 iBUG points in millimetres (x right, y down, z away from the camera), see
#: the module docstring for its provenance
MEAN_FACE_68 = np.array([
    [-76.8, -37.7, 40.1], [-76.1, -17.9, 37.5], [-74.2, 1.9, 35.7], [-70.5, 21.4, 33.1],
    [-63.4, 39.7, 27.5], [-51.8, 55.8, 19.5], [-36.9, 69.2, 10.3], [-19.7, 79.7, 1.2],
    [0.0, 82.8, -1.8], [19.7, 79.7, 1.2], [36.9, 69.2, 10.3], [51.8, 55.8, 19.5],
    [63.4, 39.7, 27.5], [70.5, 21.4, 33.1], [74.2, 1.9, 35.7], [76.1, -17.9, 37.5],
    [76.8, -37.7, 40.1], [-60.3, -52.4, 7.8], [-51.4, -60.9, 0.7], [-38.5, -63.9, -5.3],
    [-25.0, -62.4, -10.0], [-12.3, -57.6, -13.6], [12.3, -57.6, -13.6], [25.0, -62.4, -10.0],
    [38.5, -63.9, -5.3], [51.4, -60.9, 0.7], [60.3, -52.4, 7.8], [0.0, -43.0, -14.4],
    [0.0, -30.7, -20.1], [0.0, -18.4, -26.4], [0.0, -5.7, -32.3], [-15.1, 3.6, -16.4],
    [-7.9, 6.3, -19.5], [0.0, 8.6, -21.6], [7.9, 6.3, -19.5], [15.1, 3.6, -16.4],
    [-45.0, -40.0, 2.7], [-37.1, -44.4, -0.6], [-27.9, -44.4, -1.8], [-19.7, -39.0, -1.6],
    [-28.4, -37.3, -1.5], [-37.5, -37.3, -0.4], [19.7, -39.0, -1.6], [27.9, -44.4, -1.8],
    [37.1, -44.4, -0.6], [45.0, -40.0, 2.7], [37.5, -37.3, -0.4], [28.4, -37.3, -1.5],
    [-29.4, 30.2, 2.7], [-18.9, 24.6, -8.6], [-8.1, 22.1, -14.9], [0.0, 23.8, -15.9],
    [8.1, 22.1, -14.9], [18.9, 24.6, -8.6], [29.4, 30.2, 2.7], [19.3, 39.9, -5.3],
    [8.7, 44.1, -10.7], [0.0, 44.9, -11.6], [-8.7, 44.1, -10.7], [-19.3, 39.9, -5.3],
    [-24.8, 30.4, 0.8], [-8.1, 28.1, -13.2], [0.0, 28.8, -14.5], [8.1, 28.1, -13.2],
    [24.8, 30.4, 0.8], [8.3, 34.8, -11.1], [0.0, 35.8, -12.1], [-8.3, 34.8, -11.1],
])


class HeadPose(NamedTuple):
    yaw: float
    pitch: float
    roll: float


def rotation_matrix(pose: HeadPose) -> np.ndarray:
    """The rotation of a head pose (degrees), ``Rz(roll) · Ry(-yaw) · Rx(-pitch)``."""
    yaw, pitch, roll = np.radians(pose)
    cy, sy = np.cos(-yaw), np.sin(-yaw)
    cp, sp = np.cos(-pitch), np.sin(-pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rz @ ry @ rx


def euler_angles(r: np.ndarray) -> HeadPose:
    """Inverse of :func:`rotation_matrix` (yaw within ±90°)."""
    b = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    a = np.arctan2(r[2, 1], r[2, 2])
    c = np.arctan2(r[1, 0], r[0, 0])
    return HeadPose(float(np.degrees(-b)), float(np.degrees(-a)), float(np.degrees(c)))


def camera_matrix(shape: tuple[int, ...], focal: float | None = None) -> np.ndarray:
    """Pinhole intrinsics of an image of ``shape`` (h, w, ...): focal = width unless given."""
    h, w = shape[:2]
    f = float(w) if focal is None else float(focal)
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]], np.float64)


def project_mean_face(pose: HeadPose, shape: tuple[int, ...], eye_px: float = 80.0, centre=None,
                      focal: float | None = None) -> np.ndarray:
    """(68, 2) image points of :data:`MEAN_FACE_68` at ``pose``, at the distance where the outer eye
    corners are about ``eye_px`` apart, its centroid seen at ``centre`` (the image centre if None)."""
    k = camera_matrix(shape, focal)
    z = k[0, 0] * EYE_CORNER_MM / eye_px
    c = np.array([k[0, 2], k[1, 2]]) if centre is None else np.asarray(centre, np.float64)
    t = np.array([(c[0] - k[0, 2]) * z / k[0, 0], (c[1] - k[1, 2]) * z / k[1, 1], z])
    cam = MEAN_FACE_68 @ rotation_matrix(pose).T + t
    uv = cam[:, :2] / cam[:, 2:] * [k[0, 0], k[1, 1]] + k[:2, 2]
    return uv


def mirror_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """The 68 points of the left-right mirrored image (pixel-centre coordinates), re-indexed so that
    each index names the same facial point again."""
    lm = np.asarray(landmarks, np.float64)
    out = lm[MIRROR_68].copy()
    out[:, 0] = (width - 1) - out[:, 0]
    return out


def head_pose(landmarks: np.ndarray, shape: tuple[int, ...], focal: float | None = None) -> HeadPose:
    """Yaw, pitch, roll (degrees) of the head whose 68 iBUG landmarks are ``landmarks`` in an image
    of ``shape``. Raises ValueError when the fit fails."""
    import cv2

    img = np.ascontiguousarray(np.asarray(landmarks, np.float64).reshape(68, 2))
    obj = np.ascontiguousarray(MEAN_FACE_68)
    k = camera_matrix(shape, focal)
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok or tvec[2, 0] <= 0:
        raise ValueError("perspective-n-point fit failed")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, k, None, rvec, tvec)
    return euler_angles(cv2.Rodrigues(rvec)[0])


# -- how MEAN_FACE_68 was made -----------------------------------------------------------------------

def _metric_upgrade(m: np.ndarray) -> np.ndarray:
    """The 3x3 A that makes the rows of ``m @ A`` pairs of orthogonal, equal-norm camera axes."""
    def g(a, b):
        return np.stack([a[:, 0] * b[:, 0], a[:, 0] * b[:, 1] + a[:, 1] * b[:, 0],
                         a[:, 0] * b[:, 2] + a[:, 2] * b[:, 0], a[:, 1] * b[:, 1],
                         a[:, 1] * b[:, 2] + a[:, 2] * b[:, 1], a[:, 2] * b[:, 2]], 1)

    a, b = m[0::2], m[1::2]
    c = np.concatenate([g(a, a) - g(b, b), g(a, b)])
    q = np.linalg.svd(c)[2][-1]
    qm = np.array([[q[0], q[1], q[2]], [q[1], q[3], q[4]], [q[2], q[4], q[5]]])
    if np.trace(qm) < 0:
        qm = -qm
    w, v = np.linalg.eigh(qm)
    return v * np.sqrt(np.clip(w, 1e-12, None))


def _motion(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metric camera rows (2N, 3) of the rank-3 factorisation of centred 2D shapes (N, P, 2), and
    each face's residual."""
    w = x.transpose(0, 2, 1).reshape(-1, x.shape[1])
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    m, shape = u[:, :3] * np.sqrt(s[:3]), np.sqrt(s[:3])[:, None] * vt[:3]
    resid = np.linalg.norm((w - m @ shape).reshape(len(x), -1), axis=1)
    return m @ _metric_upgrade(m), resid


def _canonical(s: np.ndarray) -> np.ndarray:
    """(68, 3) shape in the module's frame, exactly symmetric, outer eye corners EYE_CORNER_MM apart."""
    s = s - s.mean(0)
    across = s[45] - s[36]
    d = s[MIRROR_68] - s
    d *= np.sign(d @ across)[:, None]  # each pair's difference pointing toward the image's right
    ex = d[MIRROR_68 != np.arange(68)].mean(0)
    ex /= np.linalg.norm(ex)
    down = (s[48] + s[54]) / 2 - (s[36] + s[45]) / 2
    ey = down - (down @ ex) * ex
    ey /= np.linalg.norm(ey)
    s = s @ np.stack([ex, ey, np.cross(ex, ey)]).T
    if s[30, 2] > (s[36, 2] + s[45, 2]) / 2:
        s[:, 2] *= -1  # orthography cannot tell depth from its reverse: the nose points at the camera
    s = (s + s[MIRROR_68] * [-1, 1, 1]) / 2
    return s * (EYE_CORNER_MM / np.linalg.norm(s[45] - s[36]))


def derive_mean_face(landmarks: np.ndarray, trim: float = 0.1) -> np.ndarray:
    """The rigid 3D shape (68, 3) that best explains many faces' 2D landmarks (N, 68, 2) seen at
    different poses under scaled orthography.

    Each face's rotation comes from :data:`RIGID_POINTS` only: the jaw contour follows the
    silhouette as the head turns and the brows and lips move with expression, which, fitted as
    rigid points, nearly doubled the nose's depth on LFW. Every point's 3D position is then the
    least-squares fit to those rotations. The ``trim`` fraction of faces the rigid points fit worst
    (failed landmarks, strong expressions) is left out.
    """
    x = np.asarray(landmarks, np.float64)
    x = x - x.mean(1, keepdims=True)
    x = x / np.sqrt((x ** 2).sum((1, 2), keepdims=True) / x.shape[1])
    x = x - x[:, RIGID_POINTS].mean(1, keepdims=True)
    _, resid = _motion(x[:, RIGID_POINTS])
    x = x[resid <= np.quantile(resid, 1 - trim)]
    m, _ = _motion(x[:, RIGID_POINTS])
    shape = np.linalg.lstsq(m, x.transpose(0, 2, 1).reshape(-1, 68), rcond=None)[0]
    return _canonical(shape.T)


def _main(argv=None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m kpdp.faces.pose", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("derive", help="print MEAN_FACE_68 derived from a landmark cache (.npz)")
    d.add_argument("landmarks")
    args = p.parse_args(argv)
    with np.load(args.landmarks, allow_pickle=False) as z:
        lm = z["landmarks"]
    s = derive_mean_face(lm)
    print(f"# derived from {len(lm)} faces of {args.landmarks}")
    print("MEAN_FACE_68 = np.array([")
    for i in range(0, 68, 4):
        print("    " + " ".join(f"[{x:.1f}, {y:.1f}, {z:.1f}]," for x, y, z in s[i:i + 4]))
    print("])")


if __name__ == "__main__":
    _main()
