"""``python -m bench``: the whole suite (see ``bench.run``); ``python -m bench cluster``:
the cluster figures (see ``bench.cluster``)."""

import sys

if sys.argv[1:2] == ["cluster"]:
    from bench.cluster import main as cluster_main

    cluster_main(sys.argv[2:])
else:
    from bench.run import main

    main()
