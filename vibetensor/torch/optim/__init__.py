"""torch.optim: optimisers and learning-rate schedulers."""
from vibetensor.torch.optim import lr_scheduler  # noqa: F401
from vibetensor.torch.optim.adagrad import Adagrad  # noqa: F401
from vibetensor.torch.optim.adam import Adam  # noqa: F401
from vibetensor.torch.optim.adamw import AdamW  # noqa: F401
from vibetensor.torch.optim.optimizer import Optimizer  # noqa: F401
from vibetensor.torch.optim.rmsprop import RMSprop  # noqa: F401
from vibetensor.torch.optim.sgd import SGD  # noqa: F401
