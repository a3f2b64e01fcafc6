"""The optional parts of the package and the extra that installs each. A device needs
only the daemon: `cryptography` (with cffi, 18 MB installed against 6 MB for every other
dependency together) is needed only by fleet provisioning (the device key and CSR, and
the check that an issued certificate fits its key) and by chariotd-sim, so it comes with
`pip install 'chariotd[fleetprov]'` or `'chariotd[sim]'`, not with `pip install chariotd`."""

from __future__ import annotations

import importlib.util
from typing import Optional

EXTRAS = {
    "fleetprov": ("cryptography",),
    "sim": ("cryptography",),
}


def missing(extra: str) -> Optional[str]:
    """None when every module EXTRA brings can be imported, else what to install."""
    absent = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if not absent:
        return None
    return f"needs {', '.join(absent)}: pip install 'chariotd[{extra}]'"
