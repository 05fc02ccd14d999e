"""`python3 tools/hooks COMMAND`: run the hooks package as a folder."""

import sys
from pathlib import Path

if not __package__:
    # Run as a folder, Python puts the folder itself first on sys.path; put its
    # parent there instead so the package imports by name and its modules can
    # never shadow a standard module.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

if sys.version_info < (3, 9):  # noqa: UP036 (this file must still run on older ones)
    sys.exit(
        f"error: tools/hooks needs Python 3.9 or newer to run, and {sys.executable} is "
        f"{sys.version.split()[0]}. Run it with a newer python3; the Python the project "
        "links is chosen separately (PYO3_PYTHON)."
    )

try:
    import plumbum  # noqa: F401
    import yaml  # noqa: F401
except ImportError as error:
    # Copier's own Python has both; another Python may not.
    sys.exit(
        f"error: tools/hooks needs {error.name} (plumbum and PyYAML, which Copier also "
        f"uses), and {sys.executable} does not have it. Install them with "
        f"`{Path(sys.executable).name} -m pip install plumbum pyyaml`, or run the command "
        "with the Python that runs Copier."
    )

from hooks.cli import main

sys.exit(main())
