"""`manage.py worker` with the faults of a GPU simulated at the inference engine, the edge
that cannot run on these machines (the model itself still runs, on the CPU):

- FAULT_SLOW_INFERENCE_SECONDS: each forward pass takes that much longer (a long job);
- FAULT_OOM_ABOVE_TOKENS: a batch holding a note longer than that runs out of memory, every
  time (a case too large for the GPU).

Usage: python tests/integration/faulty_worker.py [manage.py worker options]
"""

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    sys.path[:0] = [str(REPO / "platform"), str(REPO)]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tessera.settings")
    import django

    django.setup()
    import torch
    from django.core.management import call_command

    from mlcore.engine import InferenceEngine

    slow = float(os.environ.get("FAULT_SLOW_INFERENCE_SECONDS", "0"))
    oom_above = int(os.environ.get("FAULT_OOM_ABOVE_TOKENS", "0"))
    predict_features = InferenceEngine.predict_features

    def faulty_predict_features(engine, features, **options):
        if oom_above and any(
            item.text_ids is not None and len(item.text_ids) > oom_above for item in features
        ):
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        time.sleep(slow)
        return predict_features(engine, features, **options)

    InferenceEngine.predict_features = faulty_predict_features
    call_command("worker", *sys.argv[1:])


if __name__ == "__main__":
    main()
