"""``python -m bench``: the whole suite (see ``bench.run``)."""

from bench.run import main

main()
