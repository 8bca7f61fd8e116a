from .config import CfgNode, ConfigKeyError, ConfigValueError, configurable, get_cfg

__all__ = ["CfgNode", "ConfigKeyError", "ConfigValueError", "configurable", "get_cfg"]
