"""`python3 tools/hooks COMMAND`: run the hooks package as a folder."""

import sys
from pathlib import Path

if not __package__:
    # Run as a folder, Python puts the folder itself first on sys.path; put its
    # parent there instead so the package imports by name and its modules can
    # never shadow a standard module.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from hooks.cli import main

sys.exit(main())
