from .config import CfgNode, ConfigKeyError, configurable, get_cfg

__all__ = ["CfgNode", "ConfigKeyError", "configurable", "get_cfg"]
