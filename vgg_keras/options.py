"""The options of a run, typed, with the paper's defaults: one place for every default and help
text. The command-line parser is generated from these classes, ``config.json`` is their
serialisation, and it reads back into them.

>>> config = ClassificationConfig(arch="A", width=0.25, crop=64, scale=(72, 96))
>>> parser = build_parser(ClassificationConfig, "Train a VGG classifier")
>>> parsed = from_args(ClassificationConfig, parser.parse_args(
...     ["--arch", "a", "--width", "0.25", "--crop", "64", "--scale", "72:96"]))
>>> parsed == config, parsed.arch, parsed.scale, parsed.epochs      # epochs: the default
(True, 'A', (72, 96), 74)
>>> config == ClassificationConfig.from_dict(config.to_dict())     # config.json reads back
True
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .boxes import DEFAULT_MERGE, MERGE_THRESHOLDS
from .configs import ARCHITECTURES, CONFIGS, INITIALIZERS, VARIANTS, canonical_arch
from .transforms import test_scale

if TYPE_CHECKING:
    from ._typing import Scale

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
PROTOCOLS = ("center", "dense", "multicrop")
"""The paper's test protocols (:data:`vgg_keras.evaluate.PROTOCOLS` describes each)."""


# -- parsing one value ----------------------------------------------------------------------------

def parse_scale(text: str) -> int | tuple[int, int]:
    """``"256"`` -> 256 (single-scale S); ``"256:512"`` -> (256, 512) (jittered S).

    >>> parse_scale("256:512")
    (256, 512)
    """
    parts = str(text).split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"scale must be S or SMIN:SMAX with integers, got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2 and values[0] <= values[1]:
        return values[0], values[1]
    raise ValueError(f"scale must be S or SMIN:SMAX with SMIN <= SMAX, got {text!r}")


def multi_test_scales(scale: int | tuple[int, int],
                      crop: int | None = None) -> tuple[int, ...]:
    """The paper's multi-scale Q set: {S-32, S, S+32}, or {Smin, middle, Smax} when jittered;
    with ``crop``, scales below it are raised to it (a crop cannot exceed the image), and a
    scale raised onto another is given once.

    >>> multi_test_scales(256), multi_test_scales((256, 512)), multi_test_scales(36, crop=32)
    ((224, 256, 288), (256, 384, 512), (32, 36, 68))
    """
    scales: tuple[int, ...]
    if isinstance(scale, tuple):
        scales = (scale[0], test_scale(scale), scale[1])
    else:
        scales = (scale - 32, scale, scale + 32)
    if crop is not None:
        scales = tuple(sorted({max(int(crop), q) for q in scales}))
    return scales


def _argument_type(parse):
    """``parse`` as an argparse type: its ValueError becomes argparse's usage error."""
    def check(text):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    check.__name__ = getattr(parse, "__name__", "value")
    return check


def positive(kind: type[Number]) -> Callable[[str], Number]:
    """A parser of ``kind`` (int or float) that refuses zero and negative numbers.

    >>> positive(int)("3")
    3
    """
    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"expected a {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise ValueError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(f"must not be negative, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise ValueError(f"must be strictly between 0 and 1, got {text}")
    return value


STATISTICS = ("auto", "imagenet", "data")


def statistics_choice(text: str) -> str:
    """``--statistics``: auto, imagenet, data, or the path of a statistics JSON file."""
    text = str(text)
    if text in STATISTICS:
        return text
    if not os.path.isfile(os.path.expanduser(text)):
        raise ValueError(f"expected auto, imagenet, data or a statistics JSON file; no file "
                         f"{text!r}")
    return text


def dropout_rate(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise ValueError(f"must be in [0, 1), got {text}")
    return value


def arch_name(text: str) -> str:
    try:
        return canonical_arch(text)
    except ValueError:
        raise ValueError(f"unknown configuration {text!r}; choose from "
                         f"{', '.join(ARCHITECTURES)}") from None


C = TypeVar("C", bound="RunConfig")
Number = TypeVar("Number", int, float)


# -- declaring an option --------------------------------------------------------------------------

def option(default: Any, group: str, help: str, *, parse: Callable[[str], Any] | None = None,
           choices: Sequence[str] | None = None, nargs: str | None = None,
           metavar: str | None = None, resumable: bool = False, run: bool = True,
           flag: bool = True, negatable: bool = False) -> Any:
    """A configuration field and everything the parser needs to offer it.

    ``resumable``: may change when a run resumes (it does not shape the weights).
    ``run``: part of a run's configuration (``config.json``); False for flags that only the
    script reads (``--evaluate``). ``flag``: offered on the command line. ``negatable``: a
    boolean with ``--x/--no-x``.
    """
    metadata = dict(group=group, help=help, parse=parse, choices=choices, nargs=nargs,
                    metavar=metavar, resumable=resumable, run=run, flag=flag,
                    negatable=negatable)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


PAPER_BATCH = 256
"""The batch the paper's learning rates belong to."""
ADAM_LR = 3e-4
"""Adam's rate when --lr is not given, whatever the batch."""
LR_HELP = ("initial learning rate, used as given for the global batch. Default: the paper's "
           "{paper} for its batch of 256, scaled linearly to the global batch (--batch-size x "
           "--accumulate; Goyal et al. 2017), e.g. {paper} x 32 / 256 at --batch-size 32; with "
           "--optimizer adam, " + f"{ADAM_LR:g}" + " whatever the batch. The rate that ran is "
           "logged and kept in config.json")

UNIT_SCALE = "unit-scale"
INIT_HELP = ("random initialisation: N(0, 0.01) as in the paper, or Glorot uniform, which the "
             "authors later found trains without pre-init; xavier is that procedure as Caffe's "
             "filler runs it (variance 1/fan_in, not Keras's 2/(fan_in+fan_out))")


@dataclasses.dataclass
class RunConfig:
    """What every training run takes; each default is the paper's."""

    # model
    arch: str = option("D", "model", f"configuration of Table 1: {', '.join(CONFIGS)}; or "
                       f"{', '.join(VARIANTS)}, the paper's shallow comparison net (B with each "
                       "pair of 3x3 convolutions replaced by one 5x5)", parse=arch_name)
    width: float = option(1.0, "model", "multiplier on every channel count (1.0 is the paper; "
                          "0.25 for quick CPU experiments)", parse=positive(float))
    dropout: float = option(0.5, "model", "dropout rate after fc6 and fc7", parse=dropout_rate)
    init: str = option("paper", "model", INIT_HELP, choices=INITIALIZERS)
    init_from: str = option(None, "model", "a model to start from: imagenet (the "
                            "configuration's released ImageNet weights, fetched once into "
                            "Keras's cache; imagenet-keras or imagenet-torchvision to choose), a "
                            ".keras run, or a .pth/.h5 file or keras-hub preset. A classifier of "
                            "the same configuration is fine-tuned: every layer is copied but "
                            "fc8 when its classes differ (and fc6 when its input size does), "
                            "which start fresh. A trained A pre-initialises a deeper net as in "
                            "the paper", metavar="PATH|imagenet")
    finetune: str = option("all", "model", "with --init-from, the layers that train: all; fc "
                           "(fc6, fc7 and the new last layer); or fc8 (the last layer alone, a "
                           "linear classifier on the source's features)",
                           choices=("all", "fc", "fc8"))
    # data
    data: str = option(None, "data", "the embedded dataset (default), a TFDS name such as "
                       "imagenet2012, or a directory of images (class folders, VOC XML, or "
                       "ImageNet as unpacked)")
    data_dir: str = option(None, "data", "where TFDS datasets are (or are built); for "
                           "imagenet2012 the manual download goes in DATA_DIR/downloads/manual",
                           resumable=True)
    scale: Scale = option(256, "data", "training scale S: 256 or 384 (single-scale), or "
                          "SMIN:SMAX for scale jittering, e.g. 256:512", parse=parse_scale)
    crop: int = option(224, "data", "side of the square random crop fed to the network",
                       parse=positive(int))
    flip: bool = option(True, "data", "random horizontal flips of the training crops",
                        negatable=True)
    color_shift: bool = option(True, "data", "AlexNet PCA colour shift of the training crops",
                               negatable=True)
    resample_on: str = option("auto", "data", "where the crops are resampled: device (the "
                              "host decodes only the window each crop reads and hands it over "
                              "as uint8; the bilinear resampling, flip and colour shift run in "
                              "the training step), host (the host makes float32 crops), or "
                              "auto: device on a GPU or TPU, host on a CPU alone",
                              choices=("auto", "device", "host"), resumable=True)
    statistics: str = option("auto", "data", "the mean RGB the model subtracts and the PCA of "
                             "the colour shift: the training data's own (data: computed from "
                             "up to 2000 training images, saved as statistics.json in the run "
                             "directory and in the model), ImageNet's (imagenet), or a JSON "
                             "file from python -m vgg_keras.data stats; auto is imagenet for "
                             "ImageNet data, the --init-from model's own input normalisation "
                             "when there is one, and data otherwise",
                             parse=statistics_choice, metavar="auto|imagenet|data|PATH")
    val_fraction: float = option(0.05, "data", "share of the training data held out to choose "
                                 "the schedule and the kept epoch when the source has no "
                                 "validation split, or when validation is the reported split "
                                 "(a source with one split holds out as much again for the "
                                 "report)", parse=fraction)
    eval_split: str = option(None, "data", "the split the error is reported on, e.g. test or "
                             "'validation[:100]' (default: test when the source has a labelled "
                             "one, else validation, else a held-out --val-fraction of train; "
                             "never the split that chose the epoch)")
    # optimisation
    epochs: int = option(74, "optimisation", "epochs (370K iterations of 256 on ImageNet)",
                         parse=positive(int), resumable=True)
    steps_per_epoch: int = option(None, "optimisation", "batches per epoch (default: one pass "
                                  "over the training data)", parse=positive(int))
    batch_size: int = option(256, "optimisation", "mini-batch size: the global batch, "
                             "split evenly between --num-processes", parse=positive(int))
    accumulate: int = option(1, "optimisation", "accumulate gradients over N batches before "
                             "each update, so that --batch-size 32 --accumulate 8 trains with "
                             "the paper's batch of 256", parse=positive(int))
    optimizer: str = option("sgd", "optimisation", "sgd is the paper's (with --momentum); adam "
                            "leaves chance sooner in short CPU experiments and on small data "
                            "(its default rate, 3e-4, works well there)", choices=("sgd", "adam"))
    lr: float = option(None, "optimisation", LR_HELP.format(paper="1e-2"),
                       parse=positive(float))
    momentum: float = option(0.9, "optimisation", "SGD momentum", parse=non_negative_float)
    weight_decay: float = option(5e-4, "optimisation", "L2 weight decay with Caffe's semantics "
                                 "(decay * w added to the gradient of every kernel)",
                                 parse=non_negative_float)
    lr_patience: int = option(2, "optimisation", "epochs without validation improvement before "
                              "the learning rate is divided by 10; on small data (epochs of "
                              "about 100 steps) SGD needs more: 6 let D train from scratch on "
                              "the embedded data where 2 froze it (bench/RESULTS.md)",
                              parse=positive(int))
    lr_drops: int = option(3, "optimisation", "how many times the learning rate may be divided "
                           "by 10", parse=int)
    # run
    precision: str = option("float32", "run", "Keras dtype policy", choices=PRECISIONS)
    jit: bool = option(False, "run", "compile the training step with XLA", resumable=True)
    distribute: str = option("auto", "run", "data parallelism on one host: auto picks "
                             "MirroredStrategy over several GPUs on TensorFlow, keras."
                             "distribution.DataParallel over every device (of every process) "
                             "on JAX; several hosts: --num-processes on the JAX backend",
                             choices=("auto", "none", "mirrored", "multiworker"), resumable=True)
    seed: int = option(0, "run", "seed for weights and data order", parse=int)
    peer_timeout: float = option(600.0, "run", "with several processes: seconds without a "
                                 "finished step after which a process takes the job for broken "
                                 "(another process died) and ends with a message, instead of "
                                 "waiting for ever; at the start, how long it waits for every "
                                 "process to join (at most 240)", parse=positive(float),
                                 resumable=True)
    data_service: str = option(None, "run", "a tf.data service dispatcher (HOST:PORT) whose "
                               "workers read, decode and augment the training images (start "
                               "them with python -m vgg_keras.data.service); image "
                               "directories only", metavar="HOST:PORT", resumable=True)
    data_service_timeout: float = option(300.0, "run", "with --data-service: seconds without "
                                         "a finished step (the first one included) after "
                                         "which the run takes the service for stopped "
                                         "(dispatcher or every worker gone) and ends with a "
                                         "message, exit status 3", parse=positive(float),
                                         resumable=True)
    coordinator: str = option(None, "run", "several training processes (JAX backend): process "
                              "0's HOST:PORT, which every process dials (default: "
                              "$KERAS_DISTRIBUTION_JOB_ADDRESSES)", metavar="HOST:PORT",
                              resumable=True)
    num_processes: int = option(None, "run", "how many processes train together, one per host "
                                "or accelerator group; --batch-size is split between them "
                                "(default: $KERAS_DISTRIBUTION_NUM_PROCESSES, else 1)",
                                parse=positive(int), resumable=True)
    process_id: int = option(None, "run", "this process's index, 0 to --num-processes - 1; 0 "
                             "writes the run directory (default: "
                             "$KERAS_DISTRIBUTION_PROCESS_ID, else 0)", parse=int,
                             resumable=True)
    run_dir: str = option(None, "run", "where checkpoints, logs, history, exports and "
                          "summary.json go; running again with the same directory resumes "
                          "(default: runs/<task>-<arch>-s<scale>)", resumable=True)
    eval_batch_size: int = option(32, "run", "batch size for center-crop evaluation",
                                  parse=positive(int), resumable=True)
    verbose: str = option("auto", "run", "Keras progress output: auto is a progress bar on a "
                          "terminal and one line per epoch otherwise (a log file, --quiet)",
                          choices=("auto", "0", "1", "2"), resumable=True)
    quiet: bool = option(False, "run", "no progress bars (file checks, statistics, evaluation, "
                         "features) and one line per epoch; log messages still go to the "
                         "terminal and train.log", resumable=True)
    report: bool = option(True, "run", "write report.html (configuration, curves, evaluation, "
                          "pictures) into the run directory at the end", negatable=True,
                          resumable=True)
    export: bool = option(True, "run", "write the serving SavedModel into the run directory "
                          "(TensorFlow backend)", resumable=True, flag=False)
    evaluate: list = option(None, "run", "evaluate saved models instead of training (several: "
                            "fusion): .keras files, weight files build_vgg reads "
                            "(torchvision .pth, keras.applications .h5, keras-hub presets), or "
                            "imagenet for --arch's released weights, printed beside their "
                            "documented figures and the paper's", nargs="+",
                            metavar="MODEL", run=False)

    paper_lr: ClassVar[float] = 1e-2

    def __post_init__(self) -> None:
        # "/data/x/" and "/data/x" are one folder: a run made with either resumes with both.
        if isinstance(self.data, str) and len(self.data) > 1 and self.data.endswith(os.sep):
            self.data = self.data.rstrip(os.sep) or os.sep

    def learning_rate(self) -> float:
        """The rate that runs: ``lr`` when given, else the paper's rate scaled linearly from
        its batch of 256 to the global batch (SGD), or :data:`ADAM_LR` (Adam).

        >>> ClassificationConfig(batch_size=32).learning_rate()
        0.00125
        >>> LocalizationConfig(batch_size=64, accumulate=2).learning_rate()
        0.0005
        """
        if self.lr is not None:
            return self.lr
        if self.optimizer == "adam":
            return ADAM_LR
        return self.paper_lr * self.batch_size * self.accumulate / PAPER_BATCH

    def check_finetune(self) -> None:
        """``--finetune`` other than all freezes layers that only ``--init-from`` fills."""
        if self.finetune != "all" and not self.init_from:
            raise ValueError(f"--finetune {self.finetune} trains some layers and freezes the "
                             "others, which start from --init-from; give --init-from (for "
                             "example imagenet), or --finetune all to train from scratch.")

    def describe_learning_rate(self) -> str:
        """Where the rate that runs comes from, for the log."""
        rate, name = self.learning_rate(), {"sgd": "SGD", "adam": "Adam"}[self.optimizer]
        if self.lr is not None:
            return f"{name} learning rate {rate:g} (--lr)"
        if self.optimizer == "adam":
            return f"Adam learning rate {rate:g} (its default; --lr to change)"
        return (f"SGD learning rate {rate:g}: the paper's {self.paper_lr:g} for a batch of "
                f"{PAPER_BATCH}, scaled to the global batch of "
                f"{self.batch_size * self.accumulate} (--lr to set it)")

    # -- serialisation --------------------------------------------------------------------------
    @classmethod
    def run_fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.metadata["run"]]

    @classmethod
    def resumable(cls) -> frozenset[str]:
        """Options that may change when a run resumes."""
        return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata["resumable"])

    def to_dict(self) -> dict[str, Any]:
        """The run's options as ``config.json`` holds them (JSON types)."""
        values = {f.name: getattr(self, f.name) for f in self.run_fields()}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        """Read ``to_dict()``'s output (or ``config.json``) back; unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise TypeError(f"Unknown options: {', '.join(sorted(unknown))}")
        values = dict(values)
        if isinstance(values.get("scale"), list):
            values["scale"] = tuple(values["scale"])
        return cls(**values)

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass
class ClassificationConfig(RunConfig):
    """train_cls.py's options."""

    init: str = option("paper", "model", INIT_HELP + "; unit-scale is Glorot uniform, then each "
                       "conv and FC kernel divided by the root mean square of its output on 64 "
                       "training crops, first layer first (LSUV), the start with which SGD "
                       "trains plain VGG from scratch; with --init-from only the layers not "
                       "copied are rescaled", choices=(*INITIALIZERS, UNIT_SCALE))

    eval_methods: list = option(["dense", "center"], "evaluation", "test protocols, for "
                                "--evaluate and for the evaluation after training; "
                                "summary.json's top1_error is dense over every test scale "
                                "(the paper's headline) when dense is asked for, else the first "
                                "method's; dense and multicrop together also report their "
                                "combination", choices=PROTOCOLS, nargs="+", resumable=True)
    eval_scales: list = option(None, "evaluation", "test scales Q, each image's posteriors "
                               "averaged over them (default: the paper's, {S-32, S, S+32} for a "
                               "fixed S and {Smin, (Smin+Smax)/2, Smax} for a jittered one, none "
                               "below --crop)", parse=int, nargs="+", resumable=True)
    no_eval_flip: bool = option(False, "evaluation", "do not average the soft-max of the "
                                "horizontally flipped image", run=False)
    eval_output: str = option(None, "evaluation", "write the evaluation rows as JSON",
                              run=False)


@dataclasses.dataclass
class LocalizationConfig(RunConfig):
    """train_loc.py's options: train_cls.py's, a learning rate of 1e-3 (the paper's for
    fine-tuning the localizer), and the localisation ones."""

    paper_lr: ClassVar[float] = 1e-3
    lr: float = option(None, "optimisation", LR_HELP.format(paper="1e-3"),
                       parse=positive(float))
    init: str = option("paper", "model", INIT_HELP + "; from a classifier (--init-from) only the "
                       "new fc8_box is initialised, and there N(0, 0.01) starts the boxes 0.6 "
                       "crop sizes (RMS) from their targets and Glorot's 1.8: protocol-1 error "
                       "7.2 against 22.2 percent on vgg_shapes/hard (bench/RESULTS.md)",
                       choices=INITIALIZERS)
    regression: str = option("pcr", "localisation", "single-class (4 outputs) or per-class "
                             "(4 x C outputs) box regression", choices=("scr", "pcr"))
    classifier: list = option(None, "localisation", "classification model(s) whose class "
                              "scores rate protocol 2's boxes (training takes one; default "
                              "when training: --init-from, if it is a classifier)",
                              nargs="+", metavar="CLS_MODEL", resumable=True)
    eval_scales: list = option(None, "localisation", "test scales Q for protocol 2 (protocol 1 "
                               "uses the first; default: the paper's single scale for --scale)",
                               parse=int, nargs="+", resumable=True)
    merge: str = option(DEFAULT_MERGE, "localisation", "protocol 2's greedy merging of the "
                        "dense boxes: overfeat merges the pair with the lowest centre distance "
                        "minus intersection (Sermanet et al. 2014, section 4.3), iou the pair "
                        "with the highest IoU", choices=tuple(MERGE_THRESHOLDS), resumable=True)
    merge_threshold: float = option(None, "localisation", "when merging stops (default: the "
                                    "criterion's own): overfeat when the best pair's score, in "
                                    "units of the image, exceeds it "
                                    f"({MERGE_THRESHOLDS['overfeat']:g}), iou when the best IoU "
                                    f"is at most it ({MERGE_THRESHOLDS['iou']:g})", parse=float,
                                    resumable=True)
    eval_output: str = option(None, "localisation", "write Tables 8/9 as JSON (--evaluate)",
                              run=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.regression = str(self.regression).lower()


# -- the command line -----------------------------------------------------------------------------

def build_parser(config_class: type[RunConfig], description: str) -> argparse.ArgumentParser:
    """An ``argparse`` parser offering every flag of ``config_class``, grouped, with its help
    and its default (``--help`` shows both)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    groups = {}
    for field in dataclasses.fields(config_class):
        meta = field.metadata
        if not meta["flag"]:
            continue
        if meta["group"] not in groups:
            groups[meta["group"]] = parser.add_argument_group(meta["group"])
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING \
            else field.default
        # The one list of what may change on resume: the fields' own declarations.
        note = " (may change when a run resumes)" if meta["resumable"] else ""
        kwargs = dict(default=default, help=meta["help"] + note)
        if meta["negatable"]:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, bool):
            kwargs["action"] = "store_true"
        else:
            for key in ("choices", "nargs", "metavar"):
                if meta[key] is not None:
                    kwargs[key] = meta[key]
            if meta["parse"] is not None:
                kwargs["type"] = _argument_type(meta["parse"])
        groups[meta["group"]].add_argument("--" + field.name.replace("_", "-"), **kwargs)
    return parser


def from_args(config_class: type[C], args: argparse.Namespace) -> C:
    """The configuration an ``argparse`` namespace from :func:`build_parser` describes."""
    return config_class(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_class)
                           if hasattr(args, f.name)})
