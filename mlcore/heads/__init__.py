"""Task heads on the fused embedding.

- diagnosis: multi-label; sigmoid probabilities, each label calibrated by its own temperature
  fitted on the calibration split after training;
- emotion: multi-class over the configured label set, also temperature-calibrated.

Tutoring suggestions are ranked outside the network, per school, from the affect estimate
(mlcore.suggestions, mlcore.learnt_ranking).
"""

from mlcore.heads.classification import DiagnosisHead, EmotionHead

__all__ = ["DiagnosisHead", "EmotionHead"]
