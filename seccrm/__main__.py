"""``python -m seccrm ...`` is the ``seccrm`` command."""

import sys

from seccrm.cli import main

sys.exit(main())
