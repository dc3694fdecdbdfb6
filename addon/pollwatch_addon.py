"""Script for `mitmdump -s addon/pollwatch_addon.py`: loads the pollwatch addon.

Works with pollwatch installed, or straight from a checkout (the package sits beside this file).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pollwatch.mitm.script import addons  # noqa: E402,F401
