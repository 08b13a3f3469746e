"""``edml score`` for ``spark-submit``, which runs a Python file, not a console script:

    spark-submit --master yarn batch_scoring/spark_main.py SOURCE... --as-of --out DIR

The master (and the rest of the Spark configuration) is spark-submit's; the engine is
Spark."""

from __future__ import annotations

import os
import sys

from edml.cli import main

if __name__ == "__main__":
    os.environ["EDML_SCORE_SPARK_MASTER"] = ""  # spark-submit's own master
    sys.exit(main(["score", "--engine", "spark", *sys.argv[1:]]))
