"""FastReID's name for FastCls: ``projects.FastClas.fastclas`` is ``projects.FastCls.fastcls``
under FastReID's spelling (``ClasTrainer``, ``ClasDataset`` and the rest)."""
