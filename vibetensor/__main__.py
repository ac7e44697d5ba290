import sys

from vibetensor.cli import main

sys.exit(main())
