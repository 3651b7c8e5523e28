"""``python -m nerve.server._worker_main``: a worker process of ``nerve serve --workers N``."""

import sys

from nerve.server._workers import worker_main

if __name__ == "__main__":
    worker_main(sys.argv[1:])
