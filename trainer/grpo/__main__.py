import sys

from . import threads

threads.prepare()  # before anything imports torch: OpenMP reads its settings once, when it loads

from .cli import main  # noqa: E402

sys.exit(main())
