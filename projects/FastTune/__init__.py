"""FastTune: hyper-parameter search for fastreid recipes with Ray Tune."""
