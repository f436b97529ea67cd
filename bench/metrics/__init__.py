"""Every metric of ``../shared/docs/metrics.md``: a class (update / compute / reset) and a
functional twin each, and the harness's groups that compute them (:mod:`.registry`, the one place
metric names are declared)."""
from bench.metrics.background import BackgroundPreservation, background_psnr_ssim
from bench.metrics.base import Metric, MetricResult
from bench.metrics.detection import DetectionRate, detection_rate, iou
from bench.metrics.fid import BACKEND as FID_BACKEND
from bench.metrics.fid import InceptionDistance, frechet_distance, inception_features
from bench.metrics.landmarks import LandmarkError, landmark_nme, nme
from bench.metrics.registry import (
                          MetricSpec,
                          Row,
                          all_metrics,
                          get_group,
                          groups,
                          metric,
                          register_group,
                          selectable_groups,
)
from bench.metrics.reid_scores import (
                          ReIdentification,
                          fit_threshold,
                          impostor_scores,
                          intrusion_rate,
                          reid_rank1,
                          similarity_matrix,
                          tar_at_far,
)

__all__ = ["BackgroundPreservation", "background_psnr_ssim", "Metric", "MetricResult", "DetectionRate",
           "detection_rate", "iou", "FID_BACKEND", "InceptionDistance", "frechet_distance", "inception_features",
           "LandmarkError", "landmark_nme", "nme", "ReIdentification", "fit_threshold", "impostor_scores",
           "intrusion_rate", "reid_rank1", "similarity_matrix", "tar_at_far", "MetricSpec", "Row",
           "all_metrics", "get_group", "groups", "metric", "register_group", "selectable_groups"]
