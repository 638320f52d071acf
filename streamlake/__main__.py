from __future__ import annotations

from streamlake.cli.app import main

if __name__ == "__main__":
    main()
