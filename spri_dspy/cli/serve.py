"""``spri serve``: SPRI, the baselines and the judges behind OpenAI's chat-completions API, with a playground."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from spri_dspy.cli import build
from spri_dspy.cli.options import CLIError, add_lm_options, add_spri_options, check_settings

DESCRIPTION = (
    "Serve the programs over HTTP as OpenAI-compatible models (POST /v1/chat/completions, streaming with each "
    "critique round as it happens; GET /v1/models; GET /healthz) and a playground page at /. Models: spri, "
    "vanilla, self-refine, spri-judge and the other judges, spri-pairwise, and each --program FILE by its name. "
    "After pip install 'spri-dspy[serve]'."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``spri serve``'s arguments."""
    parser.add_argument("--program", action="append", default=[], metavar="FILE",
                        help="also serve a program saved by 'spri compile', as the model named after its file "
                             "(without .json); repeatable")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other "
                        "needs --api-key)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--api-key", default=os.environ.get("SPRI_API_KEY"), metavar="KEY",
                        help="the bearer token every /v1 request must send (default $SPRI_API_KEY; required when "
                             "--host is not a loopback address)")
    parser.add_argument("--max-concurrency", type=int, default=64, metavar="N",
                        help="requests run at once; above it a request gets 429 with Retry-After (default 64)")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="a request's program is cancelled after this long, with a 504 (default 600)")
    add_lm_options(parser)
    add_spri_options(parser, evaluation=False)


def handle(args: argparse.Namespace) -> int:
    """Build the models and serve until interrupted."""
    check_settings(args)
    if args.max_concurrency < 1:
        raise CLIError(f"--max-concurrency must be at least 1, got {args.max_concurrency}")
    if not 0 < args.port < 65536:
        raise CLIError(f"--port must be from 1 to 65535, got {args.port}")
    if not _loopback(args.host) and not args.api_key:
        raise CLIError(f"--host {args.host} is reachable from other machines: give --api-key KEY (or $SPRI_API_KEY) "
                       "so only clients that send it are answered")
    try:
        import uvicorn

        from spri_dspy.serve import Limits, create_app, served_programs
    except ImportError as exc:
        raise CLIError(f"spri serve needs {exc.name}: pip install 'spri-dspy[serve]'") from None
    from spri_dspy.core.programs import read_metadata

    for path in args.program:
        try:
            read_metadata(path)
        except (OSError, ValueError) as exc:
            raise CLIError(f"--program {path}: {exc}") from None
    lm, critic_lm, adapter = build.models(args)
    with build.program_errors("spri"):
        served = served_programs(build.program_settings(args, critic_lm), args.program)
    limits = Limits(max_concurrency=args.max_concurrency, timeout=args.timeout, max_rounds=args.max_rounds)
    app = create_app(served, lm, adapter, limits, args.api_key or None)
    where = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}"
    print(f"spri serve: playground {where}/, OpenAI-compatible API {where}/v1 (models: {', '.join(served)})"
          + ("; requests need the API key" if args.api_key else ""), file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning",
                access_log=args.verbose, timeout_graceful_shutdown=5, timeout_keep_alive=75)
    return 0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
