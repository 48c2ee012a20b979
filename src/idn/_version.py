"""The version, in one place (``idn --version``, ``idn.__version__``)."""

__version__ = "0.2.0"
