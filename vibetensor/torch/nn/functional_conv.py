"""nn.functional: convolution, pooling, padding, im2col, grid_sample, attention."""

__all__ = []
