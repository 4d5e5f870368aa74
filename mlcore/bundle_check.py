"""Whether a directory holds a model bundle that `registry.load_bundle` can load, read without
torch: its configuration parses and its weights file is whole (the header reads and the tensors
it lists fill the file). A readiness probe asks this of every serving bundle from processes that
never load a model."""

from pathlib import Path

from safetensors import SafetensorError, safe_open

from mlcore.config import ModelConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def bundle_problem(directory: str | Path) -> str | None:
    """What keeps the bundle in `directory` from loading, in a sentence; None when nothing
    does."""
    directory = Path(directory)
    if not directory.is_dir():
        return "its directory is missing"
    try:
        ModelConfig.load(directory / CONFIG_FILE)
    except FileNotFoundError:
        return f"{CONFIG_FILE} is missing"
    except (ValueError, TypeError, KeyError) as error:  # ConfigError is a ValueError
        return f"{CONFIG_FILE} does not read as a model configuration ({error})"
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        return f"{WEIGHTS_FILE} is missing"
    try:
        with safe_open(str(weights), framework="numpy") as stored:
            names = list(stored.keys())
    except (SafetensorError, OSError) as error:
        return f"{WEIGHTS_FILE} is damaged ({error})"
    if not names:
        return f"{WEIGHTS_FILE} holds no weights"
    return None
