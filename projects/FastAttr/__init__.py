"""FastAttr: pedestrian attribute recognition (multi-label) on the fastreid core."""
