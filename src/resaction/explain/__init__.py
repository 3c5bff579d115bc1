"""Explanations: where and when a model looked when it scored a clip, for every family.

``explain_video(predictor, video)`` gives an ``Explanation``: a saliency map (T, H, W) in
[0, 1] over the clip's frames and a temporal importance per frame, by Grad-CAM or Grad-CAM++
on the last residual stage (``saliency.py``) or by occluding space-time patches
(``occlusion.py``, any backend, ONNX included). ``write_explanation`` writes it as a heat-map
MP4, a temporal-importance PNG and JSON (``render.py``). The package sits above ``inference``:
it uses the predictor and its clip specification, and nothing below imports it.
"""

from resaction.explain.clip import ExplainClip, read_clip, time_range
from resaction.explain.occlusion import OcclusionResult, occlusion_map
from resaction.explain.render import write_explanation
from resaction.explain.run import METHODS, Explanation, explain_video, resolve_target
from resaction.explain.saliency import CamResult, class_activation_map

__all__ = [
    "METHODS",
    "CamResult",
    "ExplainClip",
    "Explanation",
    "OcclusionResult",
    "class_activation_map",
    "explain_video",
    "occlusion_map",
    "read_clip",
    "resolve_target",
    "time_range",
    "write_explanation",
]
