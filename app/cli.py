"""Headless subcommands. Nothing here imports Qt."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from app.train.resume_check import optimizer_refusal
from core.optimizers import (
    CATALOGUE,
    SCHEDULERS,
    OptimizerSpec,
    SchedulerSpec,
    get_optimizer,
    get_scheduler,
    parse_value,
)
from core.train import data as data_mod
from core.train.experiment import Defaults, ExperimentError, load_experiment
from core.train.losses import LOSSES, LossSpec
from core.train.runs import OutputPathError, RunRecord, check_output_path, save_fallback
from core.train.sharpness import DEFAULT_EVERY, Sharpness
from core.train.tasks import EXPERIMENT, TASKS, get_task
from core.train.training import (
    Checkpoint,
    CheckpointError,
    Epoch,
    Finished,
    Started,
    Step,
    TrainConfig,
    train,
)

TASK_NAMES = {k.replace("_", "-"): k for k in TASKS}
EXIT_DIVERGED = 3  # the run stopped because the loss diverged (NaN/inf, or exploded)
EPILOG = (
    "Exit status: 0 the run completed; 1 an error (data, checkpoint, a file that could not be "
    "written) or the run was stopped; 2 bad options; 3 the training diverged (the loss became "
    "NaN/inf or exploded; the run stops there and says what to try); 130 interrupted."
)
DATA_HINT = (
    "On the command line: --download fetches MNIST, --data-dir DIR reads it from a folder, "
    "--dataset synthetic trains on offline digits."
)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 epoch``, ``2 epochs``, ``1,875 steps``."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def _key_values(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{what} must look like NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model headless (sine fit, linear regression, LeNet-5, your own model)",
        description="Real PyTorch training with the tutorials' defaults; every option "
        "overrides. `losslab train --model FILE` trains your own model instead of a task.",
        usage="%(prog)s [-h] (TASK | --model FILE) [options]",
        epilog=EPILOG,
    )
    p.add_argument(
        "task", nargs="?", choices=sorted(TASK_NAMES), help="what to train (or use --model)"
    )
    g = p.add_argument_group("your own model")
    g.add_argument(
        "--model",
        metavar="FILE",
        help="train your own model from an experiment file: a Python file defining model() "
        "and batches() (and optionally loss(model, batch), default cross-entropy of "
        "(inputs, targets), and train_batches(), default batches()). It is your own code: "
        "LossLab runs it as `python FILE` would. Validation is the mean of loss(model, batch) "
        "over batches(), in evaluation mode. Defaults: "
        f"{_own_defaults()}; seed S means torch.manual_seed(S) before model() (a seed set "
        "inside model() wins). Not with TASK, nor with the loss, batch-size and data options.",
    )
    g = p.add_argument_group("loss")
    g.add_argument("--loss", choices=sorted(LOSSES), help="default: the task's (tutorial) loss")
    g.add_argument("--reduction", choices=("mean", "sum"))
    g.add_argument(
        "--loss-option",
        action="append",
        metavar="NAME=VALUE",
        help="e.g. label_smoothing=0.1 or delta=0.5",
    )
    g = p.add_argument_group("optimizer")
    g.add_argument(
        "--optimizer", choices=sorted(CATALOGUE), help="default: the task's (with --model: Adam)"
    )
    g.add_argument("--lr", type=float, help="learning rate")
    g.add_argument("--momentum", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument(
        "--hyper",
        action="append",
        metavar="NAME=VALUE",
        help="any other hyperparameter, e.g. beta1=0.8 (repeatable)",
    )
    g.add_argument("--scheduler", choices=sorted(SCHEDULERS))
    g.add_argument(
        "--sched",
        action="append",
        metavar="NAME=VALUE",
        help="scheduler option, e.g. step_size=2 (repeatable)",
    )
    g.add_argument("--scheduler-interval", choices=("epoch", "step"), default="epoch")
    g.add_argument("--clip-norm", type=float, metavar="MAX", help="clip_grad_norm_ max_norm")
    g = p.add_argument_group("run")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int, help="0 = full batch")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    g.add_argument(
        "--form",
        choices=("module", "numpy", "autograd"),
        default="module",
        help="sine fit: which of the tutorial's three forms to run",
    )
    g.add_argument("--activation", choices=("relu", "tanh"), default="relu")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    g.add_argument(
        "--track-sharpness",
        type=int,
        default=0,
        metavar="N",
        help="every N steps, estimate the sharpness (the top Hessian eigenvalue of the step's "
        "batch loss, by warm-started power iteration) and compare it with the optimizer's "
        "stability limit (2/lr for SGD, 2(1+β)/lr with momentum β; none for adaptive "
        f"optimizers); the series goes into --out. 0 = off; try {DEFAULT_EVERY}",
    )
    g = p.add_argument_group("data (LeNet)")
    g.add_argument(
        "--dataset",
        choices=("auto", "mnist", "synthetic"),
        default="auto",
        help="synthetic = font digits for offline demos (not MNIST)",
    )
    g.add_argument("--data-dir", help=f"MNIST folder (default: ${data_mod.ENV_VAR} or the cache)")
    g.add_argument("--download", action="store_true", help="fetch MNIST into the data folder")
    g.add_argument("--limit", type=int, help="use only this many training images")
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="RUN.json", help="write the run record (curves, metrics)")
    g.add_argument("--checkpoint", metavar="BEST.pt", help="save the best model by val loss")
    g.add_argument("--resume", metavar="BEST.pt", help="continue from a checkpoint")
    g.add_argument(
        "--log-every", type=int, default=100, metavar="N", help="batches between progress lines"
    )
    g.add_argument("--quiet", action="store_true", help="only the final summary")
    p.set_defaults(handler=run_train, parser=p)


def _own_defaults() -> str:
    info = get_task(EXPERIMENT)
    lr = info.optimizer.hyper.get("lr")
    return f"optimizer {get_optimizer(info.optimizer.name).label} lr {lr:g}, {info.epochs} epochs"


# options that choose a built-in task's model, data or loss: the model file does that itself
NOT_WITH_MODEL = {
    "loss": "--loss",
    "reduction": "--reduction",
    "loss_option": "--loss-option",
    "batch_size": "--batch-size",
    "data_dir": "--data-dir",
    "download": "--download",
    "limit": "--limit",
}
NOT_WITH_MODEL_DEFAULTS = {
    "form": ("module", "--form"),
    "activation": ("relu", "--activation"),
    "dtype": ("float32", "--dtype"),
    "dataset": ("auto", "--dataset"),
}


def _task_of(args: argparse.Namespace) -> str:
    """The task key: a built-in one, or ``experiment`` for ``--model``."""
    if args.model is None:
        if args.task is None:
            raise ValueError("choose what to train: a TASK, or --model FILE for your own model")
        return TASK_NAMES[args.task]
    if args.task is not None:
        raise ValueError(
            f"give either a TASK ({args.task}) or --model FILE, not both: the file brings its "
            "own model and data"
        )
    given = [flag for key, flag in NOT_WITH_MODEL.items() if getattr(args, key)]
    given += [
        f for key, (default, f) in NOT_WITH_MODEL_DEFAULTS.items() if getattr(args, key) != default
    ]
    if given:
        raise ValueError(
            f"{', '.join(given)}: not with --model (the file's model(), batches() and "
            "loss(model, batch) decide that)"
        )
    return EXPERIMENT


def _experiment(args: argparse.Namespace):
    """The --model file, imported once for the whole command: its defaults and its training
    share it, so the user's code runs once, as ``python file.py`` would run it."""
    if getattr(args, "loaded_experiment", None) is None:
        args.loaded_experiment = load_experiment(args.model)
    return args.loaded_experiment


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig from parsed options; ``ValueError`` names what is wrong."""
    task = _task_of(args)
    info = get_task(task)
    suggested = _experiment(args).defaults() if task == EXPERIMENT else Defaults()
    base = suggested.optimizer or info.optimizer
    opt_name = args.optimizer or base.name
    opt_info = get_optimizer(opt_name)
    # the same rule as default_hyper: a default's values go with its optimizer only
    hyper: dict[str, Any] = dict(base.hyper) if opt_name == base.name else {}
    for name, value in (
        ("lr", args.lr),
        ("momentum", args.momentum),
        ("weight_decay", args.weight_decay),
    ):
        if value is not None:
            hyper[name] = value
    for name, text in _key_values(args.hyper, "--hyper").items():
        hyper[name] = parse_value(opt_info.param(name), text)
    scheduler = None
    if args.scheduler:
        s_info = get_scheduler(args.scheduler)
        params = {p.name: p for p in s_info.params}
        s_hyper = {}
        for name, text in _key_values(args.sched, "--sched").items():
            if name not in params:
                raise ValueError(
                    f"Unknown option {name!r} for {s_info.label}; valid: " + ", ".join(params)
                )
            s_hyper[name] = parse_value(params[name], text)
        scheduler = SchedulerSpec(args.scheduler, s_hyper)
    elif args.sched:
        raise ValueError("--sched needs --scheduler")
    loss = None
    if task == EXPERIMENT:
        return TrainConfig(
            task=task,
            model_file=args.model,
            optimizer=OptimizerSpec(opt_name, hyper),
            scheduler=scheduler,
            scheduler_interval=args.scheduler_interval,
            clip_norm=args.clip_norm,
            epochs=suggested.epochs if args.epochs is None else args.epochs,
            seed=args.seed,
            device=args.device,
            log_every=args.log_every,
            checkpoint=args.checkpoint,
            resume=args.resume,
            track_sharpness=args.track_sharpness,
        ).resolved()
    if args.loss or args.reduction or args.loss_option:
        extra = {k: float(v) for k, v in _key_values(args.loss_option, "--loss-option").items()}
        loss = LossSpec(args.loss or info.loss.name, args.reduction or info.loss.reduction, extra)
    config = TrainConfig(
        task=task,
        loss=loss,
        optimizer=OptimizerSpec(opt_name, hyper),
        scheduler=scheduler,
        scheduler_interval=args.scheduler_interval,
        clip_norm=args.clip_norm,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        form=args.form,
        activation=args.activation,
        dataset=args.dataset,
        data_dir=args.data_dir,
        limit=args.limit,
        log_every=args.log_every,
        checkpoint=args.checkpoint,
        resume=args.resume,
        dtype=args.dtype,
        track_sharpness=args.track_sharpness,
    )
    return config.resolved()


def run_train(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        # before any training: a long run must not end in "cannot write" and lose its record
        for option, path, what in (
            ("--out", args.out, "the run record"),
            ("--checkpoint", args.checkpoint, "the checkpoint"),
        ):
            if path:
                try:
                    check_output_path(path, what)
                except OutputPathError as exc:
                    raise ValueError(f"{option}: {exc}") from None
        if config.resume and (refusal := optimizer_refusal(config.resume, config.optimizer, True)):
            raise ValueError(f"--resume: {refusal}")
    except ExperimentError as exc:  # the file itself: its words, without the usage line
        _error(str(exc))
        return 2
    except ValueError as exc:
        args.parser.error(str(exc))
    if args.download and _download(config) != 0:
        return 1
    record = RunRecord.for_config(config)
    out = _Output(args.quiet, args.log_every, config.track_sharpness)
    code = None
    try:
        for event in train(config, experiment=getattr(args, "loaded_experiment", None)):
            record.add(event)
            out.show(event)
    except ExperimentError as exc:
        out.close()
        _error(str(exc))
        if not record.started:  # a bad file, found before training: nothing is written
            return 2
        # the file failed mid-run (a later epoch's train_batches(), ...): keep what was trained
        code, record.finished = 1, record.finished or {"status": "failed", "message": str(exc)}
    except data_mod.DataError as exc:
        out.close()
        _error(f"{exc}\n{DATA_HINT}")
        return 1
    except ValueError as exc:  # a setting torch refuses when it builds the run (a scheduler's)
        out.close()
        _error(str(exc))
        return 2
    except (CheckpointError, OSError) as exc:
        out.close()
        _error(str(exc))
        code, record.finished = 1, record.finished or {"status": "failed", "message": str(exc)}
    except KeyboardInterrupt:
        out.close()
        print("losslab train: interrupted", file=sys.stderr)
        code, record.finished = 130, {"status": "stopped", "message": "interrupted"}
    out.close()
    # what was trained is saved even when the run failed or was interrupted
    if args.out and (record.steps["step"] or code is None) and not _save(record, args.out):
        code = code or 1
    if code is not None:
        return code
    status = record.finished.get("status")
    return 0 if status == "completed" else (EXIT_DIVERGED if status == "diverged" else 1)


def _error(text: str) -> None:
    print(f"losslab train: error: {text}", file=sys.stderr)


def _save(record: RunRecord, path: str) -> bool:
    """Write the record to ``path``, else to a fallback place; say where. True when ``path``."""
    try:
        record.save(path)
    except OSError as exc:
        _error(f"cannot write {path}: {exc.strerror or exc}")
        try:
            where = save_fallback(record, path)
        except OSError as again:
            _error(f"the run record is lost: {again}")
        else:
            print(f"The run record was saved to {where} instead", file=sys.stderr)
        return False
    print(f"Run record written to {path}")
    return True


def _download(config: TrainConfig) -> int:
    folder = data_mod.data_dir(config.data_dir)
    bar = None
    try:
        from tqdm import tqdm

        def progress(name: str, done: int, total: int) -> None:
            nonlocal bar
            if bar is None or bar.desc != name:
                if bar is not None:
                    bar.close()
                bar = tqdm(
                    total=total or None,
                    desc=name,
                    unit="B",
                    unit_scale=True,
                    disable=not sys.stderr.isatty(),
                )
            bar.update(done - bar.n)

        data_mod.download(folder, progress=progress)
    except data_mod.DataError as exc:
        print(f"losslab train: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    print(f"MNIST is in {folder}")
    return 0


def sharpness_summary(s: dict[str, Any]) -> str:
    """One line on a run's sharpness series (``final["sharpness"]``) and what it cost."""
    values = [v for v in s.get("values", []) if v is not None and math.isfinite(v)]
    head = f"Sharpness: {plural(len(s.get('values', [])), 'measurement')} every "
    head += f"{plural(s.get('every', 0), 'step')}"
    if values:
        head += f"; last {values[-1]:.4g}, largest {max(values):.4g}"
        limits = [v for v in s.get("limits", []) if v is not None and math.isfinite(v)]
        if limits and s.get("limit"):
            head += f"; stability limit {s['limit']} = {limits[-1]:.4g}"
        elif s.get("limit_note"):
            head += f"; {s['limit_note']}"
    if s.get("message"):
        head += f"; {s['message']}"
    return head + f". Tracking took {s.get('share', 0):.0%} of the training time."


class _Output:
    """A tqdm bar on a terminal; the tutorial's plain lines otherwise."""

    def __init__(self, quiet: bool, log_every: int, track_sharpness: int = 0) -> None:
        self.quiet = quiet
        self.log_every = log_every
        self.track_sharpness = track_sharpness
        self.measured, self.sharp_every = 0, 1  # sharpness measurements; print every k-th
        self.tty = sys.stderr.isatty() and not quiet
        self.bar = None

    def show(self, e) -> None:
        if isinstance(e, Started):
            self._start(e)
        elif isinstance(e, Step):
            if self.bar is not None:
                self.bar.update(1)
                if e.batch % 10 == 0 or e.batch == 1:
                    self.bar.set_postfix(epoch=e.epoch, loss=f"{e.loss:.4g}", refresh=False)
            elif not self.quiet and (e.batch % self.log_every == 0) and e.total > 1:
                print(
                    f"Train Epoch: {e.epoch} [{e.seen}/{e.total} "
                    f"({100 * e.seen / e.total:.0f}%)]\tLoss: {e.loss:.6f}",
                    flush=True,
                )
        elif isinstance(e, Epoch):
            self._epoch(e)
        elif isinstance(e, Checkpoint):
            if not self.quiet and self.epochs <= 50:
                self._print(f"Saved best model so far (val loss {e.val_loss:.6g}) to {e.path}")
        elif isinstance(e, Sharpness):
            self._sharpness(e)
        elif isinstance(e, Finished):
            self._finish(e)

    def _sharpness(self, e: Sharpness) -> None:
        if e.message:  # tracking turned off: said at once, training goes on
            self._print(f"losslab train: {e.message}", sys.stderr)
            return
        self.measured += 1
        if self.quiet or (self.measured - 1) % self.sharp_every:
            return
        limit = f" (limit {e.limit:.4g})" if math.isfinite(e.limit) else ""
        self._print(f"Sharpness at step {e.step:,}: {e.value:.4g}{limit}")

    def _print(self, text: str, file=None) -> None:
        if self.bar is not None:
            self.bar.write(text, file=file)
        else:
            print(text, file=file, flush=True)

    def _start(self, e: Started) -> None:
        self.epochs = e.epochs
        # about 20 sharpness lines over a run, whatever N
        every = self.track_sharpness
        measures = (e.epochs - e.start_epoch + 1) * e.steps_per_epoch // every if every else 0
        self.sharp_every = max(1, measures // 20)
        print(f"{e.label}: {e.n_params:,} parameters on {e.device}", flush=True)
        print(f"Data: {e.source}", flush=True)
        if e.start_epoch > 1:  # a resumed run: say from where, and what it trains with now
            used = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                             for k, v in e.hyper.items())  # fmt: skip
            print(f"Resumed at epoch {e.start_epoch} with {used}", flush=True)
        if self.tty:
            from tqdm import tqdm

            total = (e.epochs - e.start_epoch + 1) * e.steps_per_epoch
            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True)

    def _epoch(self, e: Epoch) -> None:
        if self.quiet:
            return
        every = max(1, self.epochs // 20)  # long full-batch runs: about 20 lines
        if e.epoch % every and e.epoch != self.epochs:
            return
        text = f"Epoch {e.epoch}: train loss {e.train_loss:.6g}, val loss {e.val_loss:.6g}"
        if e.val_accuracy is not None:
            text += f", val accuracy {100 * e.val_accuracy:.2f}%"
        text += f" ({e.seconds:.2f} s)"
        for key in ("polynomial", "line"):
            if key in e.details:
                text += f"   {e.details[key]}"
        self._print(text)

    def _finish(self, e: Finished) -> None:
        self.close()
        final = e.final
        if e.status == "diverged":
            head = f"Diverged at step {e.steps:,}, after {plural(e.epochs, 'full epoch')}"
        else:
            head = f"Finished ({e.status}) after {plural(e.epochs, 'epoch')}"
            head += f", {plural(e.steps, 'step')}"
        parts = [head]
        if final.get("val_loss") is not None:
            parts.append(f"val loss {final['val_loss']:.6g}")
        if final.get("val_accuracy") is not None:
            parts.append(f"val accuracy {100 * final['val_accuracy']:.2f}%")
        if math.isfinite(e.best_val_loss):
            parts.append(f"best val loss {e.best_val_loss:.6g} at epoch {e.best_epoch}")
        print(", ".join(parts), flush=True)
        for key in ("polynomial", "line"):
            if key in final:
                print(final[key], flush=True)
        if final.get("sharpness"):
            print(sharpness_summary(final["sharpness"]), flush=True)
        if e.divergence is not None:
            d = e.divergence
            print(
                f"Diverged in epoch {d.epoch}: {d.reason}. Try: {d.advice}.",
                file=sys.stderr,
                flush=True,
            )
        elif e.message:
            print(e.message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
