"""Submits ``python -m trainer.task`` as a Vertex AI custom job (TPU, GPU or CPU); its flags and what it
uploads are described in ``trainer.launch.vertex`` (``python -m trainer.submit --help``).

    python -m trainer.submit --project=P --region=us-central1 --staging_bucket=gs://B \\
        --experiment=labse/train --tpu_type=v5e-4 -- --mode=train --model_dir=gs://B/run1 ...
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from trainer.cli import parse_submit
from trainer.launch.vertex import submit


def main(argv: Sequence[str] | None = None) -> int:
    args, passthrough = parse_submit(sys.argv[1:] if argv is None else argv)
    return submit(args, passthrough)


if __name__ == "__main__":
    sys.exit(main())
