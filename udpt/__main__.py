"""``python -m udpt``: the same as the ``udpt`` command."""

from udpt.cli import main

if __name__ == "__main__":
    main()
