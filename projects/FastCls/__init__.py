"""FastCls: image classification on the fastreid core (FastReID users know it as FastClas)."""
