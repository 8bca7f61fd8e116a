"""FastRetri: fine-grained image retrieval on the fastreid core."""
