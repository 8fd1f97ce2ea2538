"""`python -m nbn_tutorial` runs the command-line interface."""
from nbn_tutorial.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
