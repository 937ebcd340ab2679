"""llmos: an operating system for language models."""

__version__ = "0.1.0"
