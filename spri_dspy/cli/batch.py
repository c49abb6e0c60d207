"""What ``spri generate`` and ``spri judge`` share: a program over a dataset with
:func:`~spri_dspy.runtime.batch.run_batch`, here or on Ray, and its summary printed."""

from __future__ import annotations

import argparse
from pathlib import Path

from spri_dspy.cli import build
from spri_dspy.cli.options import CLIError, batch_threads, check_settings


def run(args: argparse.Namespace, kind: str, fields: dict[str, str], optional: tuple[str, ...],
           program=None) -> int:
    """Run a batch command: ``program`` (its critics placed on ``--critic-lm`` here), else the one ``--program``
    names."""
    import dspy

    from spri_dspy.runtime.batch import OutputBusyError, RunMismatchError, recorded_adapter, run_batch
    from spri_dspy.core.data import RowError
    from spri_dspy.runtime.distributed import ClusterError

    check_settings(args)
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise CLIError(f"OUTPUT {args.output}: is a file; OUTPUT is a folder (created when missing)")
    if args.adapter is None and not args.restart:  # a resume goes on in the format its results were written in
        args.adapter = recorded_adapter(args.output)
    lm, critic_lm, adapter = build.models(args)
    ray = ray_cluster(args)
    if program is None:
        program = build.program(kind, args.program, args, critic_lm)
    else:
        program.place_critics(critic_lm)
    info = {"program": args.program, "lm": args.lm, "critic_lm": args.critic_lm, "threshold": args.threshold,
            "max_rounds": args.max_rounds, "keep": args.keep, "seeds": args.seeds, "seed_match": args.seed_match,
            "leave_one_out": args.leave_one_out, "max_words": args.max_words, "use_reference": args.use_reference,
            "fields": fields, "overrides": getattr(args, "overrides", {})}
    try:
        with dspy.context(lm=lm, adapter=adapter):
            summary = run_batch(program, args.input, args.output, split=args.split, fields=fields, optional=optional,
                                id_field=args.id_field, hash_ids=args.hash_ids, keep_columns=args.keep_columns,
                                restart=args.restart, require_columns=True, threads=batch_threads(args),
                                max_errors=args.max_errors, skip_bad_rows=args.skip_bad_rows,
                                progress=not args.no_progress, info=info, ray=ray)
    except (OutputBusyError, RunMismatchError) as exc:
        raise CLIError(str(exc)) from None
    except (ClusterError, ConnectionError) as exc:  # ConnectionError: Ray's own, e.g. for 'auto' without a cluster
        raise CLIError(f"--ray {args.ray or '(RAY_ADDRESS or a local Ray)'}: {' '.join(str(exc).split())[:300]}") from None
    except (RowError, FileNotFoundError, ValueError) as exc:
        message = str(exc)
        raise CLIError(message if message.startswith(str(args.input)) else f"{args.input}: {message}") from None
    print(summary.describe(args.output))
    left_out = summary.info.get("columns_left_out")
    if left_out:
        print(f"  columns left out of the results (JSON cannot hold their values; join on id or index): "
              f"{', '.join(left_out)}")
    return 1 if summary.failed or summary.stopped_early else 0


def ray_cluster(args: argparse.Namespace):
    """``--ray``/``--actors`` as a :class:`~spri_dspy.runtime.distributed.RayCluster` (None without ``--ray``)."""
    import importlib.util

    if args.ray is None:
        if args.actors is not None:
            raise CLIError("--actors sizes the pool of Ray actors; give --ray [ADDRESS] too")
        return None
    if importlib.util.find_spec("ray") is None:
        from spri_dspy.runtime.distributed import RAY_MISSING

        raise CLIError(f"--ray: {RAY_MISSING}")
    from spri_dspy.runtime.distributed import RayCluster

    lm, critic_lm = build.lm_specs(args)
    return RayCluster(lm, critic_lm, address=args.ray or None, actors=args.actors, logs=args.verbose,
                      adapter=args.adapter)
