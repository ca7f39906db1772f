"""``python -m seccrm.cli ...`` is the ``seccrm`` command too."""

import sys

from seccrm.cli import main

sys.exit(main())
