"""Train variants under one budget and several seeds, and write a Markdown report with figures.

Examples:
    python -m recipes.compare --variants unet,unet-dropout,unet-spatialdrop \
        --dataset ../shared/data/membrane --mask-encoding binary_inverted --seeds 3 --epochs 8

    python -m recipes.compare --suite questions --output docs/results

The second command regenerates docs/results.md and its figures in docs/results/. Each
(dataset, variant, seed) result is written to <output>/runs/ as soon as it finishes, so
rerunning the same command skips finished runs and continues where it stopped. A rerun with
another budget stops with an error unless --overwrite is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time
from pathlib import Path

from recipes import common
from zoo.report import Question

SHARED_DATA = Path(os.environ.get("UNET_ZOO_SHARED_DATA", "../shared/data"))
DEFAULT_SEEDS = 3
DEFAULT_EPOCHS = 4


@dataclasses.dataclass(frozen=True)
class DatasetPlan:
    """One dataset of a suite, with the epochs and per-epoch image cap of its budget."""

    source: str
    mask_encoding: str = "auto"
    epochs: int = DEFAULT_EPOCHS
    max_train_images: int | None = None


@dataclasses.dataclass(frozen=True)
class Suite:
    """A preset: questions, datasets and the argument defaults that the preset changes."""

    title: str
    questions: tuple[Question, ...]
    datasets: tuple[DatasetPlan, ...]
    defaults: dict


QUESTIONS = (
    Question("dropout", "1. Dropout: per-unit, spatial or none",
             "Does dropout at rate 0.2 in the bottleneck (the end of the encoder) help, and is "
             "dropping whole feature maps (SpatialDropout2D) better than dropping single units "
             "(Dropout)?",
             ("unet", "unet-dropout", "unet-spatialdrop"), "unet"),
    Question("prelu", "2. PReLU placement",
             "Where does PReLU (one learned slope per channel) in place of ReLU help: in the "
             "encoder, in the decoder, everywhere, or nowhere (the baseline)?",
             ("unet", "unet-prelu-encoder", "unet-prelu-decoder", "unet-prelu"), "unet"),
    Question("kernels", "3. Convolution shapes: single 5x5, two 3x3 or asymmetric",
             "Each convolution unit as one 5x5 (unet-5x5), as two stacked 3x3 that see the same "
             "5x5 window (unet-factorized), as one 3x3 (unet), or as 1x3 then 3x1 that see the "
             "same 3x3 window (unet-asymmetric). What does each cost, and do they score "
             "differently?",
             ("unet-5x5", "unet-factorized", "unet", "unet-asymmetric"), "unet-5x5", ("cost",)),
    Question("upsampling",
             "4. Upsampling: transposed convolution, resize-convolution or pixel shuffle",
             "Stride-2 transposed convolutions with 2x2 (unet), 3x3 and 4x4 kernels against "
             "bilinear resize then 3x3 convolution (unet-upsample) and sub-pixel convolution "
             "with ICNR initialisation (unet-pixelshuffle): accuracy, and checkerboard artifacts "
             "at initialisation and after training.",
             ("unet", "unet-transpose3", "unet-transpose4", "unet-upsample", "unet-pixelshuffle"),
             "unet", ("checkerboard",)),
)

# NOTE: the 117 runs took 53 minutes of wall time on 2 cores of an Intel Xeon with AVX-512 and
# AMX (64 px, 16 base filters, float32). A 2-core AMD EPYC with AVX2 only trains about half as
# fast, so expect 1.5 to 2 hours there (an estimate). float32 keeps the results comparable on
# both CPUs: without AMX, bfloat16 trained about 12x slower than float32.
SUITES = {
    "questions": Suite(
        title="U-Net design questions",
        questions=QUESTIONS,
        datasets=(
            DatasetPlan("zoo_shapes", epochs=16, max_train_images=128),
            DatasetPlan(str(SHARED_DATA / "membrane"), "binary_inverted", epochs=11),
            DatasetPlan(str(SHARED_DATA / "kvasir_seg"), "binary", epochs=8, max_train_images=128),
        ),
        defaults={"image_size": 64, "batch_size": 8, "seeds": 3, "precision": "float32",
                  "output": "docs/results", "set": ["base_filters=16"]},
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recipes.compare",
        description="Train U-Net variants under one budget and several seeds, and write a "
                    "Markdown report: held-out mean IoU (mean ± std), cost, throughput, "
                    "checkerboard artifacts and receptive fields.",
    )

    chosen = parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--variants", help="comma-separated variant names. The first is the "
                                           "reference that the others are compared with")
    chosen.add_argument("--suite", choices=sorted(SUITES),
                        help="a preset of questions, datasets and budget. Options given "
                             "explicitly replace the preset's values")
    common.add_data_arguments(parser)

    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                        help="number of seeds per variant, counting up from --seed "
                             "(default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs per run (default: {DEFAULT_EPOCHS}, or the suite's "
                             "value per dataset)")
    parser.add_argument("--max-train-images", type=int, default=None,
                        help="maximum training images per epoch. The training split repeats, so "
                             "later epochs continue with new images (default: the whole split, "
                             "or the suite's value per dataset)")
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--loss", default="crossentropy",
                        help="crossentropy, dice, focal or ce_dice (default: %(default)s)")
    parser.add_argument("--precision", default="float32", choices=common.PRECISIONS,
                        help="float32, mixed_bfloat16 or mixed_float16. bfloat16 is only fast on "
                             "CPUs with AVX512-BF16 or AMX (default: %(default)s)")

    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one config field of every variant, for example "
                             "--set base_filters=16. Repeat it for more")

    parser.add_argument("--output", default="runs/compare",
                        help="folder for results (runs/) and figures (default: %(default)s)")
    parser.add_argument("--report", default=None,
                        help="path of the Markdown report (default: the output folder's path "
                             "with .md appended, for example docs/results.md)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete stored results of another budget instead of stopping. "
                             "Results of the same budget are kept either way")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing, only write the report from the stored results")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse `argv`. With --suite, the suite's values become the defaults."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--suite", choices=sorted(SUITES))
    suite_name = probe.parse_known_args(argv)[0].suite
    parser = build_parser()
    if suite_name:
        # dataset and mask_encoding default to None so that an explicit value can be rejected.
        parser.set_defaults(**SUITES[suite_name].defaults, dataset=None, mask_encoding=None)
    args = parser.parse_args(argv)
    common.check_positive(parser, args, "seeds", "batch_size", "image_size")
    for name in ("epochs", "max_train_images"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1; received {value}")
    if not 0 < args.learning_rate < 1:
        parser.error(f"--learning-rate must be in (0, 1); received {args.learning_rate}")
    if args.suite and (args.dataset is not None or args.mask_encoding is not None):
        parser.error("--dataset and --mask-encoding do not apply with --suite, which fixes its "
                     "datasets. Use --variants to compare on another dataset")
    return args


@dataclasses.dataclass
class Plan:
    """The runs and report sections that the arguments describe."""

    title: str
    questions: list[Question]
    budgets: list
    variants: list[str]
    seeds: list[int]
    checkerboard_variants: list[str]


def _budget(args, dataset: DatasetPlan, overrides: dict):
    from zoo.experiments import Budget

    is_folder = Path(dataset.source).is_dir()
    return Budget(
        source=dataset.source,
        mask_encoding=dataset.mask_encoding if is_folder else "auto",
        holdout_fraction=args.holdout_fraction if is_folder else None,
        image_size=args.image_size,
        batch_size=args.batch_size,
        epochs=args.epochs or dataset.epochs,
        max_train_images=args.max_train_images or dataset.max_train_images,
        learning_rate=args.learning_rate,
        loss=args.loss,
        precision=args.precision,
        augment=not args.no_augment,
        overrides=overrides,
    )


def make_plan(args) -> Plan:
    """Turn the arguments into budgets, variants, seeds and questions."""
    overrides = common.parse_overrides(args.set)
    if args.suite:
        suite = SUITES[args.suite]
        title, questions, datasets = suite.title, list(suite.questions), suite.datasets
        checkerboard_variants = [variant for question in questions
                                 if "checkerboard" in question.sections
                                 for variant in question.variants]
    else:
        variants = [name.strip() for name in args.variants.split(",") if name.strip()]
        if not variants:
            raise ValueError("--variants is empty. Give comma-separated names, for example "
                             "unet,unet-dropout.")
        title = "Variant comparison"
        text = f"{', '.join(variants[1:]) or 'No other variant'} against {variants[0]}."
        questions = [Question("comparison", "Variants compared", text, tuple(variants),
                              variants[0], ("cost",))]
        datasets = (DatasetPlan(args.dataset, args.mask_encoding),)
        checkerboard_variants = variants
    variants = list(dict.fromkeys(v for question in questions for v in question.variants))
    return Plan(title, questions, [_budget(args, dataset, overrides) for dataset in datasets],
                variants, list(range(args.seed, args.seed + args.seeds)),
                list(dict.fromkeys(checkerboard_variants)))


def check_plan(plan: Plan) -> None:
    """Raise ValueError for an unknown variant, override, precision or loss, or a missing dataset."""
    import zoo
    from zoo import losses, training
    from zoo.data import registry

    for variant in plan.variants:
        zoo.config_of(variant, **plan.budgets[0].overrides)
    first = plan.budgets[0]
    if first.precision not in training.PRECISIONS:
        raise ValueError(f"Invalid --precision {first.precision!r}. Expected one of: "
                         f"{', '.join(training.PRECISIONS)}.")
    losses.get(first.loss)
    for budget in plan.budgets:
        if not Path(budget.source).is_dir() and not registry.is_registered(budget.source):
            raise ValueError(
                f"Dataset not found: {budget.source!r} is neither a folder with images/ and "
                f"masks/ nor a registered TFDS name ({', '.join(registry.registered_names())})."
            )


def train_missing(store, plan: Plan, data_dir: str | None) -> int:
    """Train each (dataset, seed, variant) that has no stored result, and return that count."""
    import keras

    from zoo import experiments

    total = len(plan.budgets) * len(plan.seeds) * len(plan.variants)
    index = trained = 0
    for budget in plan.budgets:
        for seed in plan.seeds:
            for variant in plan.variants:
                index += 1
                run = f"[{index}/{total}] {budget.label} {variant} seed {seed}"
                stored = store.load(budget, variant, seed)
                if stored is not None:
                    print(f"{run}: skipped, finished at {stored['finished_at']}")
                    continue
                print(f"{run}: training", flush=True)
                result, maps = experiments.train_variant(budget, variant, seed, data_dir)
                store.save(result, maps if seed == plan.seeds[0] else None)
                keras.backend.clear_session()
                trained += 1
                print(f"{run}: mean IoU {result['mean_iou']:.4f}, {result['wall_seconds']:.0f} s "
                      f"({result['images_per_second']:.1f} training images/s)", flush=True)
    return trained


def write_report(store, plan: Plan, args, argv: list[str]) -> Path:
    from zoo import report

    output = Path(args.output)
    report_path = Path(args.report) if args.report else output.parent / f"{output.name}.md"
    results, maps = report.collect(store, plan.budgets, plan.variants, plan.seeds)
    # The report names the command that trains the runs, so --report-only is left out.
    training_arguments = [arg for arg in argv if arg != "--report-only"]
    data = report.ReportData(
        title=plan.title,
        command="python -m recipes.compare " + shlex.join(training_arguments),
        questions=plan.questions,
        budgets=plan.budgets,
        seeds=plan.seeds,
        results=results,
        maps=maps,
        figure_folder=output,
        report_path=report_path,
    )
    return report.write_report(data, plan.checkerboard_variants, plan.variants)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    common.setup_logging()
    # Heavy imports come after argument parsing, so --help and argument errors return at once.
    from zoo import experiments

    started = time.perf_counter()
    try:
        plan = make_plan(args)
        check_plan(plan)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    store = experiments.ResultStore(args.output)
    print(f"{len(plan.variants)} variants x {len(plan.seeds)} seeds x {len(plan.budgets)} "
          f"datasets; results in {store.root / 'runs'}")
    try:
        if not args.report_only:
            for budget in plan.budgets:
                store.check_budget(budget, overwrite=args.overwrite)
            trained = train_missing(store, plan, args.data_dir)
            print(f"Trained {trained} runs in {(time.perf_counter() - started) / 60:.1f} min")
        path = write_report(store, plan, args, argv)
    except experiments.BudgetMismatchError as error:
        print(f"error: {error}\nPass --overwrite to delete them and train under the new budget, "
              "or choose another --output.", file=sys.stderr)
        return 2
    print(f"Report written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
