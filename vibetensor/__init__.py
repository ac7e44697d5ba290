"""vibetensor: a readable deep-learning runtime in Python. Users import `vibetensor.torch`."""
__version__ = "0.1.0"
