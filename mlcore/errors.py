"""The errors mlcore raises on purpose. Anything else escaping mlcore is a bug."""


class InputError(ValueError):
    """An input (image, audio, text, manifest line) that cannot be used, with a message a
    person understands."""


class ConfigError(ValueError):
    """A model configuration or bundle that is inconsistent or incomplete."""
