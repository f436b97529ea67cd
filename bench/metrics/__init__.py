"""Every metric of ``../shared/docs/metrics.md``: the functions that compute them, and the
harness's groups that run those functions per image and per cell (:mod:`.registry`, the one place
metric names are declared; :mod:`.base` says why there are no metric classes)."""
from bench.metrics.background import background_psnr_ssim
from bench.metrics.base import MetricResult
from bench.metrics.detection import detection_rate, iou
from bench.metrics.fid import BACKEND as FID_BACKEND
from bench.metrics.fid import frechet_distance, inception_features
from bench.metrics.landmarks import landmark_nme, nme
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
                          fit_threshold,
                          impostor_scores,
                          intrusion_rate,
                          reid_rank1,
                          similarity_matrix,
                          tar_at_far,
)

__all__ = ["background_psnr_ssim", "MetricResult",
           "detection_rate", "iou", "FID_BACKEND", "frechet_distance", "inception_features",
           "landmark_nme", "nme", "fit_threshold", "impostor_scores",
           "intrusion_rate", "reid_rank1", "similarity_matrix", "tar_at_far", "MetricSpec", "Row",
           "all_metrics", "get_group", "groups", "metric", "register_group", "selectable_groups"]
