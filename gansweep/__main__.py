"""`python -m gansweep ...` is the `gansweep` command."""
from gansweep.jobs.cli import command

if __name__ == "__main__":
    command()
