"""FastDistill: logit (symmetric KL) and feature ("overhaul") distillation for re-ID."""
