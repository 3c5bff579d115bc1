"""``python -m resaction.cli``: the same command as ``resaction`` (used under ``torchrun -m``)."""

from resaction.cli import main

if __name__ == "__main__":
    main()
