"""`make soak`: the long chaos run on a stack of its own, its figures written to
docs/reliability.md.

    python -m tests.chaos [--minutes 15] [--kills 20] [--seed N] [--no-docs]
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
from pathlib import Path

from streamlake.config import load_config
from streamlake.local.stack import LocalStack
from streamlake.paths import checkout_root
from tests.chaos.figures import write_figures
from tests.chaos.harness import ChaosPlan, ChaosRun
from tests.conftest import CONFIGS, local_overrides
from tests.support import cli_env, with_lake


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos")
    parser.add_argument("--minutes", type=float, default=15.0, help="minutes of production")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the driver, at least")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--memory-ceiling-mb", type=float, default=4096.0)
    parser.add_argument("--no-docs", action="store_true", help="print, do not write the docs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    plan = ChaosPlan(
        seed=seed,
        produce_s=args.minutes * 60,
        kills=args.kills,
        kafka_restarts=2,
        aws_restarts=1,
        rates={"orders": 40.0, "clickstream": 40.0, "customers": 10.0},
        overload_factor=10.0,
        overload_s=60.0,
        kill_after_commit_s=(0.0, 20.0),
        memory_ceiling_mb=args.memory_ceiling_mb,
    )
    work = Path(tempfile.mkdtemp(prefix="streamlake-soak-"))
    overrides = local_overrides(work / "stack")
    config = load_config("local", CONFIGS, environ=overrides)
    stack = LocalStack(config.settings, config.pipeline)
    print(f"chaos soak, seed {seed}, work folder {work}", flush=True)
    stack.up()
    try:
        run = ChaosRun(
            plan,
            with_lake(config.settings, work),
            config.pipeline,
            stack,
            cli_env(overrides, work),
            work,
            on_event=lambda line: print(line, flush=True),
        )
        figures = run.run()
    finally:
        stack.down()
    docs = None if args.no_docs else checkout_root() / "docs" / "reliability.md"
    print(write_figures(figures, docs), flush=True)
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
