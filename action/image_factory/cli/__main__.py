"""`python -m image_factory.cli`."""

import sys

from image_factory.cli.main import main

sys.exit(main())
