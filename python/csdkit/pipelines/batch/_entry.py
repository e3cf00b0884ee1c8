"""``python -m csdkit.pipelines.batch._entry REQUEST.json``: the worker process's entry point.

(A separate module so that ``-m`` does not re-execute :mod:`.worker`, which the package has imported.)
"""

from .worker import main

raise SystemExit(main())
