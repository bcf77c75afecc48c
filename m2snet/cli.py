"""``python -m m2snet``: look inside weights files and convert the authors' to ours.

Exit codes: 0 success, 1 the run failed (one line on stderr; ``--debug`` adds the
traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
import traceback

import m2snet
from m2snet.checkpoint import AUTHORS_TRAINING, IMAGENET, describe

NORMALIZATIONS = {"imagenet": IMAGENET, "authors-training": AUTHORS_TRAINING}


def _inspect(args: argparse.Namespace) -> int:
    model, ckpt = m2snet.load_model(args.weights)
    params = sum(p.numel() for p in model.parameters())
    kind = "authors' reference file" if ckpt.authors else f"{m2snet.checkpoint.FORMAT} checkpoint"
    print(f"{args.weights}: {kind}")
    print(f"  model          {describe(model)}, {params / 1e6:.2f} M parameters")
    print(f"  input size     {ckpt.input_size}x{ckpt.input_size}")
    n = ckpt.normalization
    print(f"  normalization  mean {list(n.mean)}, std {list(n.std)} on 0..{n.max_value:g} pixels")
    print(f"  loads strictly ({len(ckpt.state_dict)} entries)")
    for key, value in ckpt.extra.items():
        print(f"  {key:<14} {value}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    model, ckpt = m2snet.load_model(args.weights)
    norm = NORMALIZATIONS[args.normalization] if args.normalization else ckpt.normalization
    size = args.input_size or ckpt.input_size
    out = m2snet.save_checkpoint(model, args.output, input_size=size, normalization=norm,
                                 extra={**ckpt.extra, "converted_from": str(args.weights)})
    print(f"wrote {out}: {describe(model)}, input {size}, normalization {args.normalization or 'kept'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m m2snet",
        description="M2SNet/MSNet model package: inspect and convert weights files.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="show the model a weights file describes and check "
                                       "that it loads strictly")
    p.add_argument("weights", help="the authors' .pth or one of our checkpoints")
    p.set_defaults(run=_inspect)

    p = sub.add_parser("convert", help="write the authors' .pth as a self-describing checkpoint")
    p.add_argument("weights", help="input weights (the authors' .pth)")
    p.add_argument("output", help="output file (written atomically)")
    p.add_argument("--input-size", type=int, help="input side the weights expect "
                                                  "(default: the file's, 352 for the authors')")
    p.add_argument("--normalization", choices=sorted(NORMALIZATIONS),
                   help="pixel normalization the weights expect (default: the file's; the "
                        "authors' released files take imagenet)")
    p.set_defaults(run=_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except Exception as err:  # one line per failure; the traceback only on request
        if args.debug:
            traceback.print_exc()
        print(f"error: {err}".splitlines()[0], file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
