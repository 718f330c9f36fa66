"""Compute budgets ("profiles"): what the book trains, and with how much.

One profile fixes the data file, and for every model how many epochs and
seeds it gets and where its runs come from:

``train``
    the book build trains it (or reuses a completed run with the same
    configuration, see :func:`cmlib.train.train_seeds`);
``stored``
    committed run artifacts in ``results/runs`` (small: history, predictions,
    metrics, no weights) made by ``cmlib stored-runs`` with the largest budget
    the hardware at hand allowed; the book never retrains them, and each page
    states their provenance.

Profiles:

``smoke``      tiny data, one epoch, every model and notebook: used by the tests.
``classroom``  a class in 90 minutes: 2000 clusters, the basic CNN and ResNet50V2 (the thesis's
               recommendation) trained in the build, plus the runs the exercise sheet's
               solutions read; install, train, execute and build in about ten minutes on 2 cores.
``laptop``  what ``make book`` runs on 2 CPU cores: the full mock catalogue; the basic CNN
            trained to early stopping in the build; the Krippendorf baseline, the deep
            models (fair protocol, :data:`FAIR_DEEP`) and the long experiments from stored runs.
``thesis``  the thesis's budget, 4000 epochs x 10 seeds per deep model: a GPU job
            (``cmlib book --profile thesis``; days on one GPU, see the README).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..errors import InputError

#: Registry families that are not deep ``keras.applications`` networks.
SHALLOW_FAMILIES = ("basic", "baseline")


def deep_models() -> tuple[str, ...]:
    """The deep architectures, in registry order (every family but the basic CNN and the baselines)."""
    from .. import models

    return tuple(m for m in models.available_models() if models.get_spec(m).family not in SHALLOW_FAMILIES)


def page_models() -> tuple[str, ...]:
    """Order of the per-architecture pages: the basic CNN(s), the deep models, then the baselines.

    Derived from the registry (:func:`cmlib.models.available_models`): registering a model adds
    its page, its toc entry and its plans in every profile; nothing else needs editing.
    """
    from .. import models

    fam = {m: models.get_spec(m).family for m in models.available_models()}
    return (tuple(m for m in fam if fam[m] == "basic") + deep_models()
            + tuple(m for m in fam if fam[m] == "baseline"))


def display_name(model: str) -> str:
    """A model's name for people, from the registry (unknown names are returned unchanged)."""
    from .. import models

    try:
        return models.get_spec(model).display_name
    except InputError:
        return model

STORED_RUNS_DIR = "results/runs"


@dataclass(frozen=True)
class DataPlan:
    path: str
    n: int
    seed: int = 0


@dataclass(frozen=True)
class RunPlan:
    """How one model (or experiment) is trained in a profile."""

    model: str
    epochs: int
    seeds: tuple[int, ...] = (0,)
    overrides: dict = field(default_factory=dict)
    source: str = "train"            # "train" | "stored"
    label: str = ""                  # experiment label (e.g. "lr 5e-4"); "" for the main run

    @property
    def runs_dir(self) -> str:
        return STORED_RUNS_DIR if self.source == "stored" else "runs"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    data: DataPlan
    models: dict[str, RunPlan]
    #: extra experiments: thesis Fig. 22 (overfitting), Fig. 25 (learning rates), and the
    #: future-work questions (fair split, 10 bands, uncertainties, schedules, data size)
    experiments: dict[str, RunPlan] = field(default_factory=dict)
    #: keep the model files (best.keras, last.keras) of the runs it trains; the pages read only the
    #: predictions, and the smoke profile's 11 deep models would otherwise leave ~10 GB on disk
    keep_models: bool = True
    #: the models that get a page (None: every registered model, :func:`page_models`)
    page_models: tuple[str, ...] | None = None

    def pages(self) -> tuple[str, ...]:
        """The models with an architecture page in this profile, in page order."""
        allm = page_models()
        return allm if self.page_models is None else tuple(m for m in allm if m in self.page_models)

    def plan(self, model: str) -> RunPlan:
        try:
            return self.models[model]
        except KeyError:
            raise InputError(f"profile '{self.name}' has no plan for model '{model}'; "
                             f"it has: {', '.join(self.models)}") from None


#: Remedies tried for a deep model that did not learn under the fair protocol: the fair recipe with one change
#: each, as the experiments ``<model>_remedy_<slug>`` (:func:`remedy_key`), in the order tried.  Each entry:
#: (slug, change, label, seeds).  A remedy starts with one seed; one that makes the model learn gets as many as
#: the model's fair runs.
#:
#: - VGG16's ReLUs die at lr 1e-3 (its first layer gets no gradient from epoch 4 on); a 6-epoch probe of the
#:   remedies (``benchmarks/vgg_remedies.py``) kept its image path open at lr 1e-4 with the thesis's
#:   architecture unchanged, and at lr 1e-4 it learned (seeds 0-2: test std(x) 0.237, 0.235, 0.232 dex).
#: - ResNet50V2 shows none of those failures, yet ends at the redshift-only floor.  lr 1e-4 did not help (one
#:   seed: its training loss fell faster, its validation loss did not): the run memorises its training clusters
#:   (:func:`cmlib.metrics.memorisation`).  The next change aims at that: all eight orientations of each image
#:   (flips and 90-degree rotations, as Krippendorf et al. 2023 train) instead of the flips alone, which doubles
#:   the distinct training images without changing the physics (a cluster has no preferred orientation).  It
#:   removed the memorisation (one seed: training loss 81 % of the redshift-only level, was 73 %) but the model
#:   still ends at that level (test std(x) 0.288 dex): what is left is how slowly it learns.  Hence the third
#:   change, the length of the schedule: the thesis's optimisation at the same 30 epochs had its best validation
#:   loss at its last epoch, and the thesis-protocol run (71 x 71, Adam 1e-3) kept improving after its 30th epoch
#:   (validation = test MSE 0.088 at epoch 30, 0.080 at epoch 35; the redshift alone 0.099).  A remedy's
#:   change may set ``epochs``: it replaces :data:`FAIR_EPOCHS`; the cosine decay stretches with it (the warm-up
#:   stays 3 epochs).
#:   It worked: seed 0 went below the redshift-only floor from epoch 25 on (validation MSE 0.0765, floor 0.0776)
#:   and stopped early at epoch 60 (best 50) with test std(x) 0.246 dex, learning from the images (the redshift
#:   alone 0.300), so it gets the model's three seeds.
#: - ResNet152V2 (the thesis's best) ends at the same floor with the same memorisation after 30 epochs: it gets
#:   the schedule that made ResNet50V2 learn.
#: - VGG19 (VGG16 with a fourth convolution in blocks 3-5) fails the same way, sooner: after its first epoch of the
#:   fair recipe (still in the warm-up, lr rising to 1e-3) 65 % of its ReLU channels never fire and its first
#:   layer's gradient norm is 7e-8 (VGG16 after its first epoch: 37 % and 7e-6).  It gets VGG16's remedy.
#: - EfficientNet-B7 predicts one mass for every cluster from its first epoch on: the spread of its predictions is
#:   exactly 0 from epoch 3, so every unit of its dense ReLU head is off for every cluster (the redshift enters the
#:   head directly) and no gradient passes it (:func:`cmlib.metrics.training_findings`, "dead head").  A probe of
#:   the run's first 120 steps (``benchmarks/effnet_head.py``) follows the head: with the fair recipe up to 69 % of
#:   its units were off for every probe cluster; at a tenth of the learning rate under 1 %; with global average
#:   pooling instead of Flatten the share still rose (26 % at step 100).  It gets the smaller rate, VGG16's remedy
#:   too.
REMEDY_INFIX = "_remedy_"
FAIR_REMEDIES = {
    "vgg16": (("lr1e-4", {"lr": 1e-4}, "lr 1e-4 (the remedy for the dead ReLUs that cut its image path)", (0, 1, 2)),),
    "vgg19": (("lr1e-4", {"lr": 1e-4}, "lr 1e-4 (VGG16's remedy for the same cut image path)", (0,)),),
    "resnet50v2": (("lr1e-4", {"lr": 1e-4}, "lr 1e-4 (the rate that opened VGG16's image path)", (0,)),
                   ("rot90", {"augment": "flip-rot90"},
                    "all eight orientations (flips and 90-degree rotations, the remedy for its memorisation)", (0,)),
                   ("epochs100", {"epochs": 100},
                    "a 100-epoch schedule (the remedy for learning too slowly in 30 epochs)", (0, 1, 2))),
    "resnet152v2": (("epochs100", {"epochs": 100},
                     "a 100-epoch schedule (ResNet50V2's remedy for learning too slowly in 30 epochs)", (0,)),),
    # its dense head dies in the first epoch (benchmarks/effnet_head.py: at a tenth of the rate the head kept
    # (almost) all its units through the probe's 120 steps; with global average pooling they died more slowly)
    "efficientnetb7": (("lr1e-4", {"lr": 1e-4}, "lr 1e-4 (the remedy for its dead head, chosen by the head probe)",
                        (0,)),),
}


def remedy_key(model: str, slug: str) -> str:
    """The experiment key of a remedy: ``vgg16_remedy_lr1e-4``."""
    return model + REMEDY_INFIX + slug


def is_remedy_key(key: str) -> bool:
    return REMEDY_INFIX in key


def remedy_keys(profile: "Profile", model: str) -> list[str]:
    """The keys of the remedy experiments a profile plans for ``model``, in the order tried."""
    prefix = remedy_key(model, "")
    return [k for k in profile.experiments if k.startswith(prefix)]


def _deep(epochs: int, seeds=(0,), source="train", **over) -> dict[str, RunPlan]:
    return {m: RunPlan(m, epochs, tuple(seeds), dict(over), source) for m in deep_models()}


SMOKE = Profile(
    name="smoke",
    description="tiny data (96 clusters), one epoch, one seed, every model and notebook (tests)",
    data=DataPlan("data/smoke.h5", n=96, seed=0),
    models={
        "basic": RunPlan("basic", 2, (0, 1)),
        "krippendorf2023": RunPlan("krippendorf2023", 1, (0,)),
        # eager execution: for one tiny epoch, tracing the deep graphs costs more than computing them
        **_deep(1, (0,), run_eagerly=True),
    },
    experiments={
        "basic_overfit": RunPlan("basic", 3, (0,), {"early_stopping": 0}, label="no early stopping"),
        "basic_lr5e-4": RunPlan("basic", 2, (0,), {"lr": 5e-4}, label="lr 5e-4"),
        "basic_tvt": RunPlan("basic", 1, (0,), {"split": "train-val-test"}, label="train-val-test split"),
        "basic_nll": RunPlan("basic", 1, (0,), {"loss": "nll"}, label="Gaussian NLL"),
        "basic_allbands": RunPlan("basic", 1, (0,), {"bands": "all"}, label="10 bands"),
        # one thesis-protocol run, so that the results page's Table 5 section executes in the tests
        "resnet50v2_thesis_protocol": RunPlan("resnet50v2", 1, (0,), {"early_stopping": 10, "run_eagerly": True},
                                                   label="thesis protocol (71x71, test set as validation set)"),
        # the fair recipe's remedy experiment, so that an architecture page's remedy section executes in the tests
        remedy_key("vgg16", "lr1e-4"): RunPlan("vgg16", 1, (0,), {"split": "train-val-test", "lr": 1e-4,
                                                                  "run_eagerly": True},
                                               label=FAIR_REMEDIES["vgg16"][0][2]),
    },
    keep_models=False,
)

CLASSROOM = Profile(
    name="classroom",
    description=("a class in 90 minutes: 2000 mock clusters; the basic CNN (2 seeds, 40 epochs, output started at the "
                 "mean mass) and ResNet50V2 "
                 "(1000 clusters, 50x50 input, 2 epochs) trained in the build, with the runs the exercise sheet "
                 "reads; about 10 minutes on 2 CPU cores"),
    data=DataPlan("data/classroom.h5", n=2000, seed=0),
    models={
        # the output starts at the mean training mass (as the deep models' do): on 2000 clusters and 40
        # epochs the thesis's zero start costs the whole budget (measured on 2 cores: test std(x) 0.32 dex,
        # no better than predicting the mean, against 0.14 dex with the mean start)
        "basic": RunPlan("basic", 40, (0, 1), {"output_bias": "mean"}),
        # the thesis's recommended deep model, unpadded (50x50: half the pixels of 71x71) on the first 1000
        # clusters, so that an epoch takes well under a minute on two cores: enough to see whether it
        # starts to learn, not to judge it
        "resnet50v2": RunPlan("resnet50v2", 2, (0,), {"pad": "none", "max_clusters": 1000}),
    },
    experiments={
        "basic_overfit": RunPlan("basic", 60, (0,), {"early_stopping": 0, "output_bias": "mean"},
                                 label="no early stopping"),
        "basic_nll": RunPlan("basic", 40, (0,), {"loss": "nll", "output_bias": "mean"}, label="Gaussian NLL"),
    },
    keep_models=False,
    page_models=("basic", "resnet50v2"),
)

#: The fair protocol of the results chapter (issue: converged deep models): a train/validation/test
#: split, everything decided on the validation set, the test set touched only for reporting; a recipe
#: that converges from scratch within a CPU budget: 50 x 50 input (the 71 x 71 padding existed only
#: for ImageNet weights), AdamW (lr 1e-3, decoupled weight decay 0.01) with a 3-epoch linear warm-up
#: and cosine decay to zero over 30 epochs, standardised labels with the output started exactly at the
#: label prior, bf16 arithmetic; early stopping after 10 epochs without improvement, predictions with
#: the best validation epoch. A run ends at the schedule's end or by early stopping, never by a budget.
FAIR_DEEP = dict(split="train-val-test", pad="none", optimizer="adamw", weight_decay=0.01, lr=1e-3,
                 lr_schedule="warmup-cosine", warmup_epochs=3, early_stopping=10, label_scaling="standardize",
                 output_bias="prior", precision="bfloat16")
FAIR_EPOCHS = 30
#: Models whose fair-protocol runs keep float32, because bf16 is slower for them on the project's CPU
#: (EfficientNet-B7: x0.78 per epoch, ``benchmarks/results/training.json``).  bf16 is meant to change a
#: run by round-off only (``benchmarks/precision_check.py``), so this is a choice of speed alone.
FAIR_FLOAT32 = ("efficientnetb7",)


def fair_deep(model: str) -> dict:
    """The fair-protocol options of one deep model: :data:`FAIR_DEEP`, in float32 for :data:`FAIR_FLOAT32`."""
    return dict(FAIR_DEEP, **({"precision": "float32"} if model in FAIR_FLOAT32 else {}))


def _remedy_plan(model: str, change: dict, label: str, seeds: Sequence[int]) -> RunPlan:
    """The stored plan of one remedy (:data:`FAIR_REMEDIES`): the fair recipe with ``change``, whose ``epochs``
    (if any) replaces :data:`FAIR_EPOCHS`."""
    opts = {k: v for k, v in change.items() if k != "epochs"}
    return RunPlan(model, int(change.get("epochs", FAIR_EPOCHS)), tuple(seeds), dict(fair_deep(model), **opts),
                   "stored", label)


#: The thesis's optimisation (Adam 1e-3, constant rate, raw labels) at the same input, split and budget:
#: the comparison that chose the recipe above (training-parameters page).
THESIS_OPTIMISATION = dict(split="train-val-test", pad="none", early_stopping=10, precision="bfloat16")
#: The thesis's own protocol (Sect. 3.2-3.3, Table 5): bands 2-4 padded to 71 x 71, the thesis split with
#: the test set as the validation set, Adam 1e-3 at a constant rate, MSE, the epoch with the lowest
#: validation (= test) loss; trained to convergence (10 epochs without improvement on that set, at most
#: :data:`THESIS_PROTOCOL_EPOCHS`), bf16 arithmetic (the precision check found no difference in the
#: result).  Its numbers are comparable with the thesis's Table 5; they are optimistic, because the
#: epoch is chosen on the clusters that are then reported (results page).
THESIS_PROTOCOL = dict(early_stopping=10, precision="bfloat16")
THESIS_PROTOCOL_EPOCHS = 100
#: The deep models that get a thesis-protocol run: the thesis's best two and its failure VGG16.
THESIS_PROTOCOL_MODELS = ("resnet50v2", "resnet152v2", "vgg16")
#: Experiment keys of the thesis-protocol runs end with this.
THESIS_PROTOCOL_SUFFIX = "_thesis_protocol"
#: Three seeds first for the thesis's best (ResNet50V2, ResNet152V2) and its failures (VGG16,
#: EfficientNet-B7); one seed for the other five until the compute plan reaches them.
THREE_SEEDS = ("resnet50v2", "resnet152v2", "vgg16", "efficientnetb7")

LAPTOP = Profile(
    name="laptop",
    description=("full mock catalogue (7946 clusters); the basic CNN trained to early stopping in the build "
                 "(thesis protocol); the Krippendorf baseline, the deep models (fair protocol) and the long "
                 "experiments from stored runs"),
    data=DataPlan("data/efeds_mock.h5", n=7946, seed=0),
    models={
        "basic": RunPlan("basic", 300, (0, 1, 2)),
        "krippendorf2023": RunPlan("krippendorf2023", 500, (0, 1, 2), {"split": "train-val-test"}, "stored"),
        **{m: RunPlan(m, FAIR_EPOCHS, (0, 1, 2) if m in THREE_SEEDS else (0,), fair_deep(m), "stored")
           for m in deep_models()},
    },
    experiments={
        "basic_overfit": RunPlan("basic", 400, (0,), {"early_stopping": 0}, "stored", "no early stopping"),
        "basic_lr5e-4": RunPlan("basic", 300, (0,), {"lr": 5e-4}, "stored", "lr 5e-4"),
        "basic_tvt": RunPlan("basic", 300, (0, 1, 2), {"split": "train-val-test"}, "stored",
                             "train-val-test split"),
        "basic_nll": RunPlan("basic", 300, (0, 1, 2), {"loss": "nll"}, "stored", "Gaussian NLL"),
        "basic_allbands": RunPlan("basic", 300, (0, 1, 2), {"bands": "all"}, "stored", "10 bands"),
        "resnet50v2_thesis_opt": RunPlan("resnet50v2", FAIR_EPOCHS, (0,), dict(THESIS_OPTIMISATION), "stored",
                                         "thesis optimisation (Adam 1e-3, constant)"),
        "vgg16_thesis_opt": RunPlan("vgg16", FAIR_EPOCHS, (0,), dict(THESIS_OPTIMISATION), "stored",
                                    "thesis optimisation (Adam 1e-3, constant)"),
        **{m + THESIS_PROTOCOL_SUFFIX: RunPlan(m, THESIS_PROTOCOL_EPOCHS, (0,), dict(THESIS_PROTOCOL), "stored",
                                               "thesis protocol (71x71, test set as validation set)")
           for m in THESIS_PROTOCOL_MODELS},
        **{remedy_key(m, slug): _remedy_plan(m, change, label, seeds)
           for m, remedies in FAIR_REMEDIES.items() for slug, change, label, seeds in remedies},
    },
)

THESIS = Profile(
    name="thesis",
    description="the thesis's budget: deep models 4000 epochs x 10 seeds, basic CNN 10 seeds (GPU job)",
    data=DataPlan("data/efeds_mock.h5", n=7946, seed=0),
    models={
        "basic": RunPlan("basic", 4000, tuple(range(10))),
        "krippendorf2023": RunPlan("krippendorf2023", 500, tuple(range(10))),
        **_deep(4000, range(10)),
    },
    experiments={
        "basic_overfit": RunPlan("basic", 4000, (0,), {"early_stopping": 0}, label="no early stopping"),
        "basic_lr5e-4": RunPlan("basic", 4000, (0,), {"lr": 5e-4}, label="lr 5e-4"),
        "basic_tvt": RunPlan("basic", 4000, tuple(range(10)), {"split": "train-val-test"},
                             label="train-val-test split"),
        "basic_nll": RunPlan("basic", 4000, tuple(range(10)), {"loss": "nll"}, label="Gaussian NLL"),
        "basic_allbands": RunPlan("basic", 4000, tuple(range(10)), {"bands": "all"}, label="10 bands"),
    },
)

PROFILES = {p.name: p for p in (SMOKE, CLASSROOM, LAPTOP, THESIS)}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InputError(f"unknown profile '{name}'; choose one of: {', '.join(PROFILES)}") from None


def format_profiles() -> str:
    lines = []
    for p in PROFILES.values():
        lines.append(f"{p.name}: {p.description}")
        lines.append(f"    data: {p.data.path} ({p.data.n} clusters, seed {p.data.seed})")
        for plan in list(p.models.values()) + list(p.experiments.values()):
            extra = f" {plan.overrides}" if plan.overrides else ""
            label = f" [{plan.label}]" if plan.label else ""
            lines.append(f"    {plan.model:<16}{label} {plan.epochs:>5} epochs x {len(plan.seeds):>2} seeds "
                         f"({plan.source}){extra}")
    return "\n".join(lines)


def parse_seed_list(value) -> list[int]:
    """Seeds from a list, an int, or text: '0-9', '0,3,5', '[0, 1, 2]' (papermill -p passes text).

    The same parser as ``cmlib train --seeds`` (:func:`cmlib.config.parse_seeds`, bounded)."""
    from ..config import parse_seeds

    return parse_seeds(value)


def parse_name_list(value) -> list[str] | None:
    """Model names from a list or text ('basic,vgg16' or "['basic', 'vgg16']"); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip().strip("'\"") for v in value.strip().strip("[]").split(",") if v.strip()]
    return [str(v) for v in value]
