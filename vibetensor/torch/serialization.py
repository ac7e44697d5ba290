"""torch.save / torch.load in the safetensors format (being written)."""
__all__ = []
