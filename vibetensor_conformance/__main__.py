"""python -m vibetensor_conformance [options]  (the same as `vibetensor conformance`)."""
import sys

from vibetensor_conformance import main

sys.exit(main())
