"""``python -m m2snet``: look inside weights files, convert the authors' to ours, and write
synthetic colonoscopy data.

Exit codes: 0 success, 1 the run failed (one line on stderr; ``--debug`` adds the
traceback), 2 usage error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import m2snet
from m2snet.checkpoint import AUTHORS_TRAINING, IMAGENET, describe
from m2snet.errors import M2SNetError, program_name, run_reporting_errors
from m2snet.files import write_json

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
                                 extra={**ckpt.extra, "converted_from": str(args.weights)},
                                 half=args.half)
    print(f"wrote {out}: {describe(model)}, input {size}, normalization {args.normalization or 'kept'}")
    return 0


def _phantom(args: argparse.Namespace) -> int:
    if args.procedure is not None:
        return _phantom_procedure(args)
    from m2snet.phantom_dataset import write_phantoms
    try:
        report = write_phantoms(Path(args.out), n=args.n, seed=args.seed, size=args.size,
                                sequence_fps=args.sequence, progress=not args.quiet,
                                positive_only=args.positive_only)
    except ValueError as error:
        raise M2SNetError(str(error)) from None
    if report.seed != args.seed:
        print(f"seed {args.seed}'s scene shows no polyp in {args.n} frames; used seed "
              f"{report.seed}, the first that does")
    print(f"wrote {report.written} image/mask pairs ({report.with_polyp} show a polyp) to "
          f"{args.out}/images and {args.out}/masks")
    if not report.with_polyp:
        again = "another --seed" + ("" if args.positive_only else ", or --positive-only")
        print(f"warning: no frame shows a polyp (seed {report.seed}'s scene has none in view "
              f"in these frames); "
              f"for polyps use {again}", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    import logging

    from m2snet.train import load_config, train
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = load_config(args.config, args.overrides)
    out = Path(args.out or Path("runs") / Path(args.config or "train").stem)
    result = train(config, out, progress=not args.quiet, resume=args.resume,
                   stop_after=args.stop_after)
    print(f"done: {len(result['history'])} epochs, checkpoints in {out} (best.pt, last.pt)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from m2snet import evaluate
    from m2snet.data import find_samples, read_target
    class_values = [int(v) for v in args.class_values.split(",")] if args.class_values else None
    if args.pred and args.gt:
        pairs = evaluate.match_folders(Path(args.pred), Path(args.gt))
        result = evaluate.evaluate_pairs(pairs, class_values=class_values)
        source = {"pred": args.pred, "gt": args.gt}
    elif args.weights and args.data:
        if class_values:
            raise ValueError("--class-values applies to --pred/--gt folders")
        samples = find_samples(args.data)
        if samples.num_classes > 1:
            raise ValueError(f"{args.data}: a {samples.num_classes}-class dataset; model "
                             f"evaluation handles binary masks only (evaluate saved class maps "
                             f"with --pred/--gt --class-values)")
        pairs = [evaluate.Pair(s.image, s.masks[0], s.group if samples.layout == "sun-seg"
                               else None, s) for s in samples.items]
        predict = evaluate.model_predictor(Path(args.weights), args.device)
        result = evaluate.evaluate_pairs(
            pairs, predict=predict,
            read_truth=lambda pair: (read_target(pair.sample) * 255).astype("uint8"))
        source = {"weights": args.weights, "data": args.data}
    else:
        raise ValueError("give --pred DIR --gt DIR, or --weights FILE --data DIR")
    result = {**source, **result}
    print(evaluate.markdown(result))
    if args.out:
        write_json(args.out, result)
        print(f"metrics: {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name("python -m m2snet"),
        description="M2SNet/MSNet model package: inspect and convert weights files, train, "
                    "make synthetic colonoscopy data.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_inspect(sub)
    _add_convert(sub)
    _add_phantom(sub)
    _add_eval(sub)
    _add_train(sub)
    return parser


def _add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="show the model a weights file describes and check "
                                       "that it loads strictly")
    p.add_argument("weights", help="the authors' .pth or one of our checkpoints")
    p.set_defaults(run=_inspect)


def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="write the authors' .pth as a self-describing checkpoint")
    p.add_argument("weights", help="input weights (the authors' .pth)")
    p.add_argument("output", help="output file (written atomically)")
    p.add_argument("--input-size", type=int, help="input side the weights expect "
                                                  "(default: the file's, 352 for the authors')")
    p.add_argument("--normalization", choices=sorted(NORMALIZATIONS),
                   help="pixel normalization the weights expect (default: the file's; the "
                        "authors' released files take imagenet)")
    p.add_argument("--half", action="store_true", help="store weights as float16 (half the "
                                                       "size; loading restores float32)")
    p.set_defaults(run=_convert)


def _phantom_procedure(args: argparse.Namespace) -> int:
    from m2snet.phantom_procedure import Procedure
    from m2snet.procedure_files import write_procedure
    if args.entering_frames and not args.frames_every:
        raise M2SNetError("--entering-frames adds training pairs: give --frames-every too")
    try:
        procedure = Procedure(args.seed, seconds=args.procedure, fps=args.fps, size=args.size)
    except ValueError as error:
        raise M2SNetError(str(error)) from None
    report = write_procedure(Path(args.out), procedure, frames_every=args.frames_every,
                             entering_frames=args.entering_frames, progress=not args.quiet)
    stretches = ", ".join(f"{n} {kind}" for kind, n in report.stretches.items())
    print(f"wrote {report.video} ({report.frames} frames, {stretches} stretches) and "
          f"{report.truth} ({report.lesions} lesions on {report.frames_with_lesion} frames)")
    if report.training_pairs:
        print(f"wrote {report.training_pairs} image/mask pairs to {args.out}/images and "
              f"{args.out}/masks")
    return 0


def _add_phantom(sub) -> None:
    p = sub.add_parser("phantom", help="write synthetic colonoscopy frames and exact polyp "
                                       "masks (images/ and masks/, PNG), or a procedure video "
                                       "with per-frame ground truth (--procedure)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=100, help="how many frames (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed: the same seed, the same frames")
    p.add_argument("--size", type=int, default=352, help="frame side in pixels (default 352)")
    p.add_argument("--sequence", type=float, metavar="FPS",
                   help="frames of one moving scene at FPS (a video) instead of independent stills")
    p.add_argument("--positive-only", action="store_true",
                   help="only stills that show a polyp at least half in view, as curated "
                        "test sets do (for PraNet's metrics; masks keep every polyp pixel); "
                        "with --sequence, the first scene from --seed on that shows one")
    p.add_argument("--procedure", type=float, metavar="SECONDS",
                   help="write one procedure of this length instead: a video (<name>.mp4) "
                        "cut together from polyp-free stretches, polyps entering and leaving "
                        "(some small) and false-alert artefacts (rims, bubbles, blur, glare), "
                        "with its COCO ground truth (<name>.truth.json: per frame and lesion)")
    p.add_argument("--fps", type=float, default=30.0, help="--procedure: frame rate (default 30)")
    p.add_argument("--frames-every", type=int, metavar="K",
                   help="--procedure: also write every K-th frame (lesion frames 4x as often) "
                        "as images/ + masks/ PNG pairs for training")
    p.add_argument("--entering-frames", type=int, default=0, metavar="N",
                   help="--procedure with --frames-every: also write every one of the first N "
                        "frames each lesion is annotated on (polyps coming into view)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_phantom)


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="the paper's metrics (PraNet's convention, pysodmetrics)",
                       description="Evaluate saved predictions against masks (--pred, --gt) "
                                   "or a model on an images/ + masks/ folder (--weights, "
                                   "--data). Sub-folders of --gt are video sequences "
                                   "(first and last frame dropped, averaged per sequence).")
    p.add_argument("--pred", help="folder of predicted maps (0..255), named like the masks")
    p.add_argument("--gt", help="folder of ground-truth masks (binarized at 128)")
    p.add_argument("--weights", help="checkpoint to evaluate on --data")
    p.add_argument("--data", help="folder with images/ and masks/")
    p.add_argument("--backend", "--device", dest="device", default="cpu", choices=("cpu", "cuda"),
                   help="where the model runs with --weights: cpu or cuda (default cpu)")
    p.add_argument("--class-values", metavar="V1,V2,...",
                   help="multi-class maps: the pixel value of each class (GOALS: 0,80,160,255); "
                        "reports per-class Dice")
    p.add_argument("--out", help="write the metrics as JSON here")
    p.set_defaults(run=_eval)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train on image/mask folders with the paper's recipe")
    p.add_argument("config", nargs="?", help="YAML config (configs/train/*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. epochs=5 data.train=DIR")
    p.add_argument("--out", help="run folder (default runs/<config name>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out after its last finished epoch (same "
                        "config; epochs=N may extend it)")
    p.add_argument("--stop-after", type=int, metavar="N",
                   help="stop after N epochs in this invocation (resume later)")
    p.set_defaults(run=_train)


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Like ``parse_args``, but ``key=value`` overrides may also follow the options
    (``train CONFIG --out RUN data.train=DIR``), in every command that takes them."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        overrides = getattr(args, "overrides", None)
        if overrides is None or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        overrides.extend(extra)
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(build_parser(), argv)
    except KeyboardInterrupt:
        return 130
    return run_reporting_errors(args)


if __name__ == "__main__":
    sys.exit(main())
