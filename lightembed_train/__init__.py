"""lightembed_train: build and improve lightembed model folders (needs torch).

Install with ``pip install 'lightembed[train]'``. The runtime package ``lightembed`` never
imports this one.
"""

from __future__ import annotations

from importlib.util import find_spec

_MISSING = [name for name in ("torch", "transformers") if find_spec(name) is None]
if _MISSING:
    raise ImportError(
        f"lightembed_train needs {' and '.join(_MISSING)}, not installed here; "
        "install the training extra with: pip install 'lightembed[train]'"
    )

__all__: list[str] = []
