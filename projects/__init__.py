"""FastReID-style projects built on the fastreid core; each folder registers into the core registries."""
