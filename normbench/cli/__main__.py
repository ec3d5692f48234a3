"""``python -m normbench.cli``: the ``normbench`` command."""

from normbench.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
