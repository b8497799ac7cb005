import sys

from image_factory.cli import main

sys.exit(main())
