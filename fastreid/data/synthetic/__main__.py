"""``python -m fastreid.data.synthetic``: write the synthetic re-ID dataset."""

from .reid import main

if __name__ == "__main__":
    main()
