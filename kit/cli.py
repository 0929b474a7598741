"""The `kit` command line: each command is its options, its door checks and one call (kit.api or a stage), then
kit.render shows the result. No logic and no rendering of its own.

Stages (and their heavy imports: TensorFlow, pandas, kaggle) load inside each command, so `kit --help`
stays fast and never authenticates with Kaggle.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import time as clock
from pathlib import Path
from typing import Annotated

import typer

from kit import config, render
from kit.errors import KitError

app = typer.Typer(
    help="kit: the Digit Recognizer toolkit. Download the data, train CNN ensembles, submit, keep score.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where the competition data lives (default: $KIT_DATA_DIR, else data/digit-recognizer; in a Kaggle "
        "Notebook under /kaggle/working).",
    ),
]

Track = Annotated[
    str | None,
    typer.Option(
        "--track",
        metavar="TRACKER",
        help="Also log the run to wandb, mlflow, tensorboard or trackio (its package: pip install 'kit[wandb]' and "
        "so on): each member's curves by epoch, the CV and OOF errors, the submission, report page and recipe; one "
        "tracker run per kit run, continued when the run resumes. [default: $KIT_TRACK, else none]",
        show_default=False,
    ),
]

AsCsv = Annotated[bool, typer.Option("--csv", help="Print the rows as CSV instead of a table.")]


def _version(show: bool) -> None:
    if show:
        import kit

        render.out.print(f"kit {kit.__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print kit's version and exit.")
    ] = False,
) -> None:
    """kit: the Digit Recognizer toolkit. Download the data, train CNN ensembles, submit, keep score."""


# ------------------------------------------------------------------------------------------------ download


@app.command()
def download(
    data_dir: DataDir = None,
    force: Annotated[
        bool, typer.Option("--force", help="Download and install again even if the data is there.")
    ] = False,
    from_zip: Annotated[
        Path | None, typer.Option("--from-zip", help="Install from a digit-recognizer.zip you already have.")
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="Build the small offline sample (scikit-learn's digits) instead.")
    ] = False,
) -> None:
    """Download the competition data through the Kaggle API, check it, and cache it for fast loading.

    Needs Kaggle credentials (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY) and the competition
    rules accepted on kaggle.com. Files are checked (columns, values, row counts) and moved into place only
    when complete. A second run with the data present does nothing unless --force.
    """
    from kit import data, submission

    status = functools.partial(render.out.status, "Downloading digit-recognizer from Kaggle...")
    render.installed(data.install(data_dir, force, from_zip, sample, downloading=status), submission.REAL_TEST_ROWS)


# --------------------------------------------------------------------------------------------------- train

# `kit train --help` in three panels: what trains, which run, where it trains.
RECIPE, RUN, WHERE = "The recipe", "The run", "Where it trains"
DEFAULT = config.PRESETS[config.DEFAULT_PRESET]  # what `kit train` trains without options; its values fill --help


def _default(field: str) -> str:
    """A `kit train` option's default as --help shows it: the default preset's value of that recipe field."""
    value = getattr(DEFAULT, field)
    if isinstance(value, bool):
        value = "on" if value else "off"
    elif isinstance(value, float):
        value = f"{value:g}"
    return f"{config.DEFAULT_PRESET}'s {value}"


@app.command()
def train(
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            rich_help_panel=RECIPE,
            help="Recipe preset: kitnet (our best one-family net, the default); leaderboard (kitnet, deotte and m5 "
            "on the same 5 folds, blended by weights fitted on their OOF rows: the leaderboard run for a GPU); "
            "the families deotte, m5 and m3 alone; seed (the seed notebook). Your own network: FILE.py:FUNCTION, "
            "where FUNCTION(recipe) returns an uncompiled Keras model from (N, 28, 28, 1) images in [0, 1] to 10 "
            "softmax probabilities; it trains with kitnet's recipe and the run keeps a copy of FILE "
            "(docs/recipes.md). Any other blend: --recipe FILE.",
            show_default=config.DEFAULT_PRESET,
        ),
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            rich_help_panel=RECIPE,
            help="1: one model on a 90/10 split; K>=2: K-fold ensemble.",
            show_default=_default("folds"),
        ),
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(
            "--repeats",
            rich_help_panel=RECIPE,
            help="K-fold: R differently seeded K-fold splits, K x R models; each row's OOF prediction is the mean of "
            "its R out-of-fold models, the test prediction the mean of all.",
            show_default=_default("repeats"),
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            rich_help_panel=RECIPE,
            help="Epochs (of each fold with --folds 2+).",
            show_default=f"{_default('epochs')} for one model, {DEFAULT.fold_epochs or DEFAULT.epochs} a fold with "
            "--folds 2+",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", rich_help_panel=RECIPE, help="Batch size.", show_default=_default("batch_size")),
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            "--lr", rich_help_panel=RECIPE, help="Peak learning rate.", show_default=_default("learning_rate")
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", rich_help_panel=RECIPE, help="Seed for the split and training.", show_default=_default("seed")
        ),
    ] = None,
    pseudo: Annotated[
        str | None,
        typer.Option(
            "--pseudo",
            rich_help_panel=RECIPE,
            help="Students of a finished run (the teacher): each member also trains on the 28,000 test images with "
            "soft targets from the teacher members that never trained on its validation rows, so the CV stays honest "
            "(a K-fold teacher on the same --folds and --seed).",
        ),
    ] = None,
    pseudo_min: Annotated[
        float | None,
        typer.Option(
            "--pseudo-min",
            rich_help_panel=RECIPE,
            help="With --pseudo: only test images whose pseudo-label has this probability.",
            show_default=_default("pseudo_min"),
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            "--precision",
            rich_help_panel=RECIPE,
            help="auto | float32 | bfloat16 | float16 (auto picks the fastest safe one).",
            show_default=_default("precision"),
        ),
    ] = None,
    augment: Annotated[
        bool | None,
        typer.Option(
            "--augment/--no-augment",
            rich_help_panel=RECIPE,
            help="Random rotation/zoom/shift while training.",
            show_default=_default("augment"),
        ),
    ] = None,
    tta: Annotated[
        bool | None,
        typer.Option(
            "--tta/--no-tta",
            rich_help_panel=RECIPE,
            help=f"Predict OOF and test rows as the mean over {len(config.TTA_VIEWS)} shifted/rotated views.",
            show_default=_default("tta"),
        ),
    ] = None,
    fold: Annotated[
        int | None,
        typer.Option(
            "--fold",
            rich_help_panel=RUN,
            help="Train only fold I of a K-fold run (needs --run-id); with --repeats, member I.",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            rich_help_panel=RUN,
            help="Use only the first N training rows (quick experiments); a resumed run keeps its own.",
        ),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id", rich_help_panel=RUN, help="Name the run; an existing id resumes it, skipping done folds."
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            rich_help_panel=WHERE,
            help="Train up to N folds at once, each in its own process (default: up to 5 per GPU, each pinned to "
            "one GPU, at most one per CPU core; on a CPU one per core, or more so the last folds still fill the "
            "cores: 5 folds on 2 cores run 3 + 2).",
        ),
    ] = None,
    mirrored: Annotated[
        bool,
        typer.Option(
            "--mirrored",
            rich_help_panel=WHERE,
            help="Several GPUs: train one model at a time across all of them (MirroredStrategy) instead of one "
            "fold per GPU.",
        ),
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            rich_help_panel=WHERE,
            envvar="KIT_RAY_ADDRESS",
            help="Train the folds as Ray tasks: 'local' starts a Ray instance for this run; 'auto', HOST:PORT or "
            "ray://HOST:PORT joins a cluster started with `ray start` (one GPU a fold where there are GPUs). The "
            "results come back to this machine's runs/. Needs pip install 'kit[ray]'.",
        ),
    ] = None,
    kaggle: Annotated[
        bool,
        typer.Option(
            "--kaggle",
            rich_help_panel=WHERE,
            help="Train on Kaggle's free GPU (T4 x2, from your weekly quota) instead: pushes a private kernel that "
            "runs this same command there, shows its status until it ends, and brings the run home into runs/ and "
            "submissions/. Ctrl-C stops waiting, not the kernel; `kit train --kaggle --run-id ID` re-attaches.",
        ),
    ] = False,
    recipe_file: Annotated[
        Path | None,
        typer.Option(
            "--recipe",
            rich_help_panel=RECIPE,
            metavar="FILE",
            help="Train the recipe in this TOML file (fields it leaves out come from its `preset`; `kit runs "
            "--recipe RUN > FILE` writes any run's), with the options above and --set applied on top.",
        ),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            rich_help_panel=RECIPE,
            metavar="FIELD=VALUE",
            help="Set any recipe field (repeatable), after the options above: e.g. --set rotation=15 --set "
            "label_smoothing=0.1 --set dropout=0.3; in a blend, --set deotte.epochs=20 sets one family's. The fields: "
            + ", ".join(config.SETTABLE)
            + ".",
        ),
    ] = None,
    predict: Annotated[
        bool,
        typer.Option(
            "--predict/--no-predict",
            rich_help_panel=RUN,
            help="Predict the 28,000 test rows and write the submission (default), or train for the CV alone "
            "(quicker experiments; `kit predict RUN` adds the submission later). A resumed run keeps its own.",
        ),
    ] = True,
    kaggle_timeout: Annotated[
        int | None,
        typer.Option(
            "--kaggle-timeout",
            rich_help_panel=WHERE,
            metavar="MINUTES",
            help="With --kaggle: the kernel's run-time limit, after which Kaggle stops it (a hung kernel spends no "
            "more of your GPU quota). [default: 180; at most 720]",
            show_default=False,
        ),
    ] = None,
    time: Annotated[
        str | None,
        typer.Option(
            "--time",
            rich_help_panel=RUN,
            metavar="DURATION",
            help="Fit the run into this wall time (90s, 30m, 1h30m): its epochs are cut, before it starts, to what "
            "fits at this device's pace (that of the newest run like it here, else measured in a few seconds), and "
            "recorded in its recipe; a run still past 1.2x the budget stops at an epoch boundary, resumable. With "
            "--kaggle the kernel fits itself and its limit follows.",
        ),
    ] = None,
    track: Track = None,
    data_dir: DataDir = None,
) -> None:
    """Train a CNN (or a K-fold ensemble) and write runs/RUN_ID/ and submissions/RUN_ID.csv.

    The recipe is a preset from kit/config.py with these options applied; the effective recipe is saved
    with the run (`kit runs --recipe RUN_ID` prints it as a file). Re-running with the same --run-id resumes:
    completed folds are skipped.
    """
    from kit import api

    overrides = dict(folds=folds, repeats=repeats, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                     seed=seed, precision=precision, augment=augment, tta=tta, pseudo=pseudo,
                     pseudo_min=pseudo_min)  # fmt: skip
    api.train(
        model,
        recipe=recipe_file,
        sets=settings,
        run_id=run_id,
        fold=fold,
        limit=limit,
        jobs=jobs,
        ray=ray,
        mirrored=mirrored,
        kaggle=kaggle,
        kaggle_timeout=kaggle_timeout,
        data_dir=data_dir,
        predict=predict,
        time=time,
        track=track,
        **overrides,
    )


# ------------------------------------------------------------------------------------------------ validate


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="The CSV to check.")],
    data_dir: DataDir = None,
) -> None:
    """Check a submission file: header, one row per test image, ImageId 1..N, Label 0..9."""
    from kit import submission

    rows = submission.expected_rows(data_dir)
    submission.validate(path, rows)
    render.valid_submission(path, rows, submission.REAL_TEST_ROWS)


# ------------------------------------------------------------------------------------ report, predict, blend


RunArg = Annotated[str | None, typer.Argument(help="A run id or directory (default: the latest run).")]


@app.command()
def report(run: RunArg = None, data_dir: DataDir = None) -> None:
    """Pictures and tables of a run: confusion matrix, worst mistakes, learning curves, per-class scores.

    Writes confusion_matrix.png, misclassified.png and learning_curves.png into runs/RUN_ID/report/, from
    the run's out-of-fold (or holdout) predictions, and cv_vs_lb.png once the run has public scores; and
    runs/RUN_ID/report/index.html, all of it on one self-contained page (pictures embedded) to open offline
    or share.
    """
    from kit import api

    render.report(api.make_report(run, data_dir))


@app.command()
def predict(
    run: Annotated[str, typer.Argument(help="The training run whose fold models predict.")],
    tta: Annotated[bool, typer.Option("--tta", help="Average over shifted and rotated views of each image.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Predict test.csv with a run's saved fold models: a CV-only run's (`kit train --no-predict`) test rows, or
    again, optionally with test-time augmentation.

    A CV-only run gets its test prediction and submission in place (its recipe's views). Any other run is
    re-predicted, its OOF rows too, so the CV with and without TTA is shown side by side, as a new run (RUN_ID-tta
    or RUN_ID-predict) with its own submission CSV.
    """
    from kit import api

    api.predict(run, tta, data_dir=data_dir)


@app.command()
def blend(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more runs to average.")],
    weights: Annotated[
        str | None, typer.Option("--weights", help="Comma-separated weights, one per run (default: equal).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Submission path (default: submissions/BLEND_ID.csv).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Average the test probabilities of several runs into a new submission, recorded as a blend run.

    When the runs share their folds, the blend's OOF CV is printed next to each run's, so you can see
    whether blending helps before spending a submission.
    """
    from kit import data, ensemble, runs

    parsed = ensemble.parse_weights(weights)
    sources = [runs.resolve(r) for r in run_ids]
    labels = runs.competition_of(sources[0], data.load_competition(data_dir)).train_labels
    render.blended(ensemble.blend(sources, parsed, labels, output))


# -------------------------------------------------------------------------------------------------- submit


@app.command()
def submit(
    target: Annotated[
        str | None, typer.Argument(help="A submission CSV or a run id (default: the latest run's CSV).")
    ] = None,
    message: Annotated[str | None, typer.Option("-m", "--message", help="Submission description.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Submit even if this exact file was submitted before.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and show what would be sent; send nothing.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for Kaggle's score (default) or return at once.")
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the score.")] = 600.0,
) -> None:
    """Validate a submission, check today's quota, upload it, wait for the score, and log it.

    Nothing is uploaded unless the file is valid (header, rows, ImageId 1..N, Label 0..9), a submission is
    left today, and the same content was not submitted before. Every submission gets a row in
    submissions/leaderboard.csv with the run's CV next to Kaggle's score.
    """
    from kit import api

    api.submit(target, message, wait=wait, timeout=timeout, force=force, dry_run=dry_run)


@app.command()
def leaderboard(
    sync: Annotated[
        bool, typer.Option("--sync", help="Fetch your submissions from Kaggle and fill in scores.")
    ] = False,
    as_csv: AsCsv = False,
    plot: Annotated[
        bool,
        typer.Option(
            "--plot",
            help="Also draw each scored submission's CV against its public score, with a fitted line and its "
            "correlation, the submissions whose LB strays from the line ringed: submissions/cv_vs_lb.png.",
        ),
    ] = False,
) -> None:
    """Show the leaderboard log (submissions/leaderboard.csv): best public score first, CV next to LB."""
    from kit import ledger

    if sync:
        from kit import submitting

        render.synced(*submitting.sync())
    if as_csv:
        sys.stdout.write(ledger.to_csv())
        return
    rows = ledger.table()
    render.leaderboard(rows, ledger.path())
    if plot and rows:
        from kit import report as stage

        render.cv_against_lb(stage.cv_vs_lb_png(rows, ledger.path().with_name("cv_vs_lb.png")))


@app.command(name="runs")
def list_runs(
    as_csv: AsCsv = False,
    recipe_of: Annotated[
        str | None,
        typer.Option(
            "--recipe",
            metavar="RUN",
            help="Print RUN's recipe as a TOML file instead (`kit runs --recipe "
            "RUN > my.toml`, edit it, `kit train --recipe my.toml`).",
        ),
    ] = None,
    sort: Annotated[
        str,
        typer.Option("--sort", help="Order: created (newest first), cv, lb (best public score) or wall (longest)."),
    ] = "created",
    last: Annotated[int | None, typer.Option("--last", min=1, help="Show only the first N runs of that order.")] = None,
) -> None:
    """Every run in runs/, newest first: kind (train, predict, blend), model, folds (x repeats; "3/5 folds" while
    incomplete), epochs, the rows it trained on (marked when --limit cut them or they are the offline sample), what
    its recipe changed from its preset, CV, wall time, when it was made, and its best public score if it was
    submitted. `kit report`, `predict`, `blend` and `submit` take the ids shown here."""
    from kit import ledger, paths, run_table, runs
    from kit.errors import UsageError

    if sort not in run_table.SORTS:
        raise UsageError(f"--sort {sort!r}: choose one of {', '.join(run_table.SORTS)}.")
    if recipe_of is not None:
        sys.stdout.write(runs.recipe_file(recipe_of))
        return
    rows = run_table.ordered(run_table.summaries(ledger.best_scores()), sort, last)
    if as_csv:
        sys.stdout.write(run_table.to_csv(rows))
        return
    render.runs(rows, paths.runs_dir())


# ---------------------------------------------------------------------------------------------------- tune

SEARCH, CONFIRM = "The search", "Confirming"


@app.command()
def tune(
    study: Annotated[
        str | None,
        typer.Option(
            "--study",
            rich_help_panel=SEARCH,
            help="The study's name: a new one starts it, an existing "
            "one continues it (from any shell or machine sharing runs/). Default: tune-YYYYMMDD-HHMMSS, the UTC time.",
        ),
    ] = None,
    space: Annotated[
        list[str] | None,
        typer.Option(
            "--space",
            rich_help_panel=SEARCH,
            metavar="FIELD=RANGE",
            help="A recipe field to search (repeatable): FIELD=LOW:HIGH, FIELD=LOW:HIGH:log or FIELD=A|B|C, "
            "e.g. --space rotation=0:20 --space learning_rate=1e-4:1e-2:log --space batch_size=128|256|512; "
            "in a blend FAMILY.FIELD. Each end is checked by the recipe's rules before anything trains.",
        ),
    ] = None,
    space_file: Annotated[
        Path | None,
        typer.Option(
            "--space-file",
            rich_help_panel=SEARCH,
            metavar="FILE",
            help='The [space] table of a TOML file: rotation = "0:20", batch_size = [128, 256].',
        ),
    ] = None,
    trials: Annotated[
        int,
        typer.Option(
            "--trials",
            rich_help_panel=SEARCH,
            help="Finished trials (complete or pruned) the study should hold, counted across every process on it.",
        ),
    ] = 20,
    time: Annotated[
        str | None,
        typer.Option(
            "--time",
            rich_help_panel=SEARCH,
            metavar="DURATION",
            help="A wall budget for this process (90s, 30m, 3h, 1h30m): no trial starts that the median "
            "trial so far says would not fit.",
        ),
    ] = None,
    prune: Annotated[
        str,
        typer.Option(
            "--prune",
            rich_help_panel=SEARCH,
            help="median: stop a trial whose mean validation accuracy at an epoch is below the median of "
            "earlier trials' there (after 4 trials, from a third of the epochs on); wilcoxon: compare each "
            "fold's final accuracy with the best trial's (Optuna's k-fold test); none.",
        ),
    ] = "median",
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            rich_help_panel=SEARCH,
            metavar="URL",
            help="A database URL (postgresql://..., mysql://...) instead of the study's journal file in "
            "runs/studies/NAME/.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            rich_help_panel=RECIPE,
            help="The preset around which to search, or your own FILE.py:FUNCTION (as kit train takes it).",
            show_default=config.DEFAULT_PRESET,
        ),
    ] = None,
    recipe_file: Annotated[
        Path | None, typer.Option("--recipe", rich_help_panel=RECIPE, metavar="FILE", help="A recipe file instead.")
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", rich_help_panel=RECIPE, metavar="FIELD=VALUE", help="A fixed recipe field (repeatable)."),
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            rich_help_panel=RECIPE,
            help="Each trial's folds (with --confirm: the confirmation's; default: the recipe's own).",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            rich_help_panel=RECIPE,
            help="Each trial's epochs (a fold's); with --confirm, the confirmation's.",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", rich_help_panel=RECIPE, help="Each trial trains on the first N rows.")
    ] = None,
    predict: Annotated[
        bool,
        typer.Option(
            "--predict/--no-predict",
            rich_help_panel=RUN,
            help="Trials predict the test rows too "
            "(default: CV only; `kit predict RUN` adds a trial's submission later).",
        ),
    ] = False,
    jobs: Annotated[
        int | None, typer.Option("--jobs", rich_help_panel=WHERE, help="A trial's folds at once (as kit train).")
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            rich_help_panel=WHERE,
            envvar="KIT_RAY_ADDRESS",
            help="Train each trial's folds as Ray tasks (as kit train --ray).",
        ),
    ] = None,
    confirm: Annotated[
        int | None,
        typer.Option(
            "--confirm",
            rich_help_panel=CONFIRM,
            metavar="K",
            help="Train the study's K best trials again at full fidelity (the recipe's own folds and epochs, "
            "or --folds/--epochs; all rows; new seeds; with the submission) and show both figures.",
        ),
    ] = None,
    show: Annotated[
        bool, typer.Option("--show", rich_help_panel=CONFIRM, help="List the study's trials and its best recipe.")
    ] = False,
    track: Track = None,
    data_dir: DataDir = None,
) -> None:
    """Search recipe fields: a study (Optuna's) whose trials are kit runs, pruned from their epochs.

    Each trial is `kit train` with the fixed options here and the trial's values (`kit runs` lists it as
    STUDY-tNNN; `kit report` opens it); by default at low fidelity and CV only. The objective is the trial's
    OOF accuracy (shown as errors). Ctrl-C, or a killed process, leaves the study to continue: `kit tune
    --study NAME` again resumes the interrupted trial's run. `--confirm K` retrains the best at full
    fidelity, since a low-fidelity winner is biased toward its own noise.
    """
    from kit import api
    from kit.errors import UsageError

    if show or confirm is not None:
        if study is None:
            raise UsageError(f"{'--show' if show else '--confirm'} needs --study NAME.")
        shaping = {"--space": space, "--space-file": space_file, "--model": model, "--recipe": recipe_file,
                   "--set": settings, "--limit": limit}  # fmt: skip
        given = [k for k, v in shaping.items() if v] + (["--confirm"] if show and confirm is not None else [])
        if given:
            raise UsageError(f"{'--show' if show else '--confirm'} reads study {study} as it is; drop {given[0]}.")
        if show:
            render.study(api.study(study, storage=storage))
        else:
            api.confirm(study, confirm, folds=folds, epochs=epochs, storage=storage, track=track, data_dir=data_dir)
        return
    api.tune(study, space=space, space_file=space_file, trials=trials, time=time, prune=prune, storage=storage,
             model=model, recipe=recipe_file, sets=settings, folds=folds, epochs=epochs, limit=limit, jobs=jobs,
             ray=ray, predict=predict, track=track, data_dir=data_dir)  # fmt: skip


# ---------------------------------------------------------------------------------------------------- main


def main() -> None:
    """Entry point: runs the app; a KitError becomes one line on stderr and its exit code.

    Typer itself reports usage errors (exit 2) and turns Ctrl-C into exit 130.
    """
    # SIGTERM (kill, a notebook's stop button, a job scheduler) unwinds like Ctrl-C: `kit train` stops its fold
    # workers and leaves no half-written fold.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    from kit.device import quiet_native_logs
    from kit.errors import FROM_CLI
    from kit.progress import COMMAND_START

    started = COMMAND_START.set(clock.monotonic())
    quiet_native_logs()
    speaking = FROM_CLI.set(True)  # kit.api's verbs say their errors in flags here
    notices = render.Notices()  # what the stages log while they wait (Kaggle's 429s), one line each on stderr
    logging.getLogger("kit").addHandler(notices)
    try:
        app()
    except KitError as exc:
        render.error(str(exc))
        sys.exit(exc.exit_code)
    except OSError as exc:  # a folder kit must write to is read-only, a file, or the disk is full
        where = (f" {exc.filename}" if exc.filename else "") + f" ({exc.strerror or exc})"
        render.error(f"cannot use{where}; check that the folder exists and is writable (or point KIT_DATA_DIR, "
                     "KIT_RUNS_DIR or KIT_SUBMISSIONS_DIR elsewhere).")  # fmt: skip
        sys.exit(1)
    finally:
        logging.getLogger("kit").removeHandler(notices)
        FROM_CLI.reset(speaking)
        COMMAND_START.reset(started)
