"""FastReID's ``fastclas`` package: the FastCls package under FastReID's names."""

from ...FastCls.fastcls import *  # noqa: F401,F403
from ...FastCls.fastcls import ClasDataset, ClasTrainer, ClsDataset, ClsTrainer  # noqa: F401
