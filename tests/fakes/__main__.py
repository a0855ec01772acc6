"""`python -m tests.fakes`: the same as `python -m tests.fakes.s3`."""

import sys

from tests.fakes.s3 import main

sys.exit(main())
