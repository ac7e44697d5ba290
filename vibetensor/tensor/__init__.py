"""dtypes, devices, Storage, strided tensors, shapes, promotion: the data floor."""
