"""pymta: a qmail-compatible mail transfer agent written on Twisted."""

__version__ = "0.1.0"
