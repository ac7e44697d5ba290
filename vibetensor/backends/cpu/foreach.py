"""CPU kernels of the foreach ops and fused optimizer steps: the per-tensor loops of
ops/foreach.py (NumPy kernels underneath; a CPU launch costs no more per tensor than per list)."""
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import foreach as fe

for _name, _loop in fe.LOOPS.items():
    fe.OPS[_name].register(DispatchKey.CPU, _loop)
