"""torch.amp: autocast and GradScaler (being written)."""
