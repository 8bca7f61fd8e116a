"""fastreid: a modular, config-driven toolbox for re-identification and embedding learning."""

__version__ = "1.0.0"
