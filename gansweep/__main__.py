"""`python -m gansweep ...` is the `gansweep` command."""
from gansweep.jobs.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
