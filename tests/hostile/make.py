"""Write every hostile case of tests/support/hostile.py under a folder.

python tests/hostile/make.py OUT      # then e.g. `flujo validate OUT/deep_dashes/spec.yaml`
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.hostile import HOSTILE, materialise


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-out")
    for name, path in materialise(out).items():
        print(f"{name}\t{path}\t{HOSTILE[name].expect}")


if __name__ == "__main__":
    main()
