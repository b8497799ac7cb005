"""`python -m image_factory.cli`."""

import sys

from image_factory.cli.app import main

sys.exit(main())
