"""Task heads on the fused embedding.

- diagnosis: multi-label; sigmoid probabilities, each label calibrated by its own temperature
  fitted on the calibration split after training;
- emotion: multi-class over the configured label set, also temperature-calibrated;
- tutoring: scores every intervention of a curated library (mlcore.library, which a school can
  edit) from the case embedding and the intervention's keys (affects, subjects); learns from
  accept/dismiss.
"""

from mlcore.heads.classification import DiagnosisHead, EmotionHead
from mlcore.heads.tutoring import TutoringHead

__all__ = ["DiagnosisHead", "EmotionHead", "TutoringHead"]
