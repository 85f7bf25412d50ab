"""``python -m bench``: the whole suite (see ``bench.run``); ``python -m bench cluster``:
the cluster figures (see ``bench.cluster``); ``python -m bench scale``: claims with simulated
workers on one PostgreSQL (see ``bench.scale``)."""

import sys

if sys.argv[1:2] == ["cluster"]:
    from bench.cluster import main as cluster_main

    cluster_main(sys.argv[2:])
elif sys.argv[1:2] == ["scale"]:
    from bench.scale import main as scale_main

    scale_main(sys.argv[2:])
else:
    from bench.run import main

    main()
