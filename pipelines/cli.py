"""The ``genpipes`` command line: ``genpipes <domain> <stage>|run``, ``demo`` and ``list``.

Config comes from the vertical's dataclass defaults, then ``--config FILE.yaml``, then every
``--set key.sub=value`` and ``--key.sub[=]value`` flag in command-line order (e.g.
``--trainer.devices 2 --trainer.strategy ddp``). A ``GenpipesError`` prints one ``error:`` line and
exits with status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from common.errors import ConfigError, GenpipesError

from .config import build_config
from .registry import MODULES, STAGES, Vertical, available_verticals, load_vertical
from .runner import TrainingInterrupted, open_run, run_stages

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file with config values")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config value, e.g. --set trainer.max_steps=200 "
                             "(repeatable; --trainer.max_steps 200 works too)")
    parser.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/<domain>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue a run directory even if its config differs")
    parser.add_argument("--overwrite", action="store_true",
                        help="move an existing run directory aside and start afresh")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as YAML and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def _split_dotted_flags(extras: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """Turn ``--a.b=v`` / ``--a.b v`` leftovers into ``a.b=v`` overrides; reject anything else."""
    out: list[str] = []
    i = 0
    extras = list(extras)
    while i < len(extras):
        tok = extras[i]
        key = tok[2:].split("=", 1)[0] if tok.startswith("--") else ""
        if "." not in key:
            parser.error(f"unrecognized argument: {tok}")
        if "=" in tok:
            out.append(tok[2:])
            i += 1
        elif i + 1 < len(extras) and not extras[i + 1].startswith("--"):
            out.append(f"{key}={extras[i + 1]}")
            i += 2
        else:
            parser.error(f"{tok}: expected a value (--{key}=VALUE or --{key} VALUE)")
    return out


def domain_parser(vertical: Vertical) -> argparse.ArgumentParser:
    """The parser of ``genpipes <domain> ...``: one sub-command per stage, ``run`` and commands."""
    parser = argparse.ArgumentParser(prog=f"genpipes {vertical.name}",
                                     description=vertical.description, allow_abbrev=False)
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    helps = {"prepare": "write the dataset into the run directory", "train": "train (resumable)",
             "sample": "draw samples", "evaluate": "compute metrics into metrics.json",
             "export": "write exports, plots and report.md",
             "run": "every stage in order, skipping the done ones"}
    for name in (*[s for s in STAGES if s in vertical.stages], "run"):
        p = sub.add_parser(name, help=helps.get(name), allow_abbrev=False)
        _common_options(p)
    for name, command in vertical.commands.items():
        p = sub.add_parser(name, help=command.help, allow_abbrev=False)
        command.add_arguments(p)
        if not any("--debug" in a.option_strings for a in p._actions):
            p.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def run_domain(vertical: Vertical, argv: Sequence[str]) -> int:
    """``genpipes <domain> <stage> [options]``."""
    parser = domain_parser(vertical)
    args, extras = parser.parse_known_args(list(argv))
    if args.stage in vertical.commands:
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        args.domain = vertical.name
        result = vertical.commands[args.stage].handler(args)
        return int(result or 0)
    overrides = list(args.overrides) + _split_dotted_flags(extras, parser)
    cfg = build_config(vertical.config_cls, config_file=args.config, overrides=overrides)
    if args.print_config:
        import yaml

        from .config import to_dict

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    out = Path(args.out) if args.out else Path("runs") / vertical.name
    run = open_run(vertical, cfg, out, resume=args.resume, overwrite=args.overwrite)
    run_stages(vertical, cfg, run, args.stage)
    return 0


def cmd_list() -> int:
    """``genpipes list``: every domain and whether it can run here."""
    rows = []
    for name, v in available_verticals().items():
        if isinstance(v, Vertical):
            extra = f" (+ {', '.join(v.commands)})" if v.commands else ""
            rows.append((name, "available", v.description + extra))
        else:
            rows.append((name, "unavailable", v))
    width = max(len(r[0]) for r in rows)
    for name, status, text in rows:
        print(f"{name:<{width}}  {status:<11}  {text}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``genpipes`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("GENPIPES_DEBUG") == "1"
    top = argparse.ArgumentParser(
        prog="genpipes", allow_abbrev=False,
        description="Diffusion pipelines: genpipes <domain> <stage>|run [options]; "
                    "genpipes demo; genpipes list.",
        epilog=f"domains: {', '.join(MODULES)}; stages: {', '.join(STAGES)}, run. "
               "See docs/cli.md.")
    top.add_argument("command", metavar="DOMAIN|demo|list", nargs="?")
    try:
        if not argv or argv[0] in ("-h", "--help"):
            top.print_help()
            return 0 if argv else EXIT_ERROR
        head, rest = argv[0], argv[1:]
        if head == "list":
            return cmd_list()
        if head == "demo":
            from .demo import demo_main

            return demo_main(rest)
        if head not in MODULES:
            raise ConfigError(f"unknown command or domain {head!r}; valid: "
                              f"{', '.join(MODULES)}, demo, list")
        return run_domain(load_vertical(head), rest)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last checkpoint",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except GenpipesError as exc:
        if isinstance(exc, TrainingInterrupted):
            print(f"interrupted: {exc}", file=sys.stderr)
            return EXIT_INTERRUPTED
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
