from .arguments import ConfigArgumentParser
from .config import CfgNode, ConfigKeyError, ConfigValueError, configurable, get_cfg

__all__ = [
    "CfgNode",
    "ConfigArgumentParser",
    "ConfigKeyError",
    "ConfigValueError",
    "configurable",
    "get_cfg",
]
