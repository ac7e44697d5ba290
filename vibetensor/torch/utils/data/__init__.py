"""torch.utils.data: datasets, samplers, collation and the DataLoader (with worker processes)."""
from vibetensor.torch.utils.data.collate import default_collate, default_convert  # noqa: F401
from vibetensor.torch.utils.data.dataloader import DataLoader  # noqa: F401
from vibetensor.torch.utils.data.dataset import (  # noqa: F401
    ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset, random_split)
from vibetensor.torch.utils.data.sampler import (  # noqa: F401
    BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler)
from vibetensor.torch.utils.data.worker import WorkerInfo, get_worker_info  # noqa: F401

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "IterableDataset", "RandomSampler",
           "Sampler", "SequentialSampler", "StackDataset", "Subset", "SubsetRandomSampler", "TensorDataset",
           "WeightedRandomSampler", "WorkerInfo", "default_collate", "default_convert", "get_worker_info",
           "random_split"]
