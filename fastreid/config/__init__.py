from .arguments import ConfigArgumentParser
from .config import CfgNode, ConfigKeyError, ConfigValueError, configurable, get_cfg
from .packaged import get_config, get_config_file, list_configs

__all__ = [
    "CfgNode",
    "ConfigArgumentParser",
    "ConfigKeyError",
    "ConfigValueError",
    "configurable",
    "get_cfg",
    "get_config",
    "get_config_file",
    "list_configs",
]
