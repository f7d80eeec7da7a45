"""ksdiff: a reproducible workbench for audio-driven talking-head research."""

__version__ = "0.1.0"
