"""The exercise sheet of the classroom profile: exercises, expected results, executed solutions.

Each :class:`Exercise` states its learning goals, prerequisites, time, the commands to run (in
the ``classroom`` profile) and the result to expect, with a range.  Its solution is a function
of this module, run on the runs of the current build when the sheet is executed: the sheet
shows the solution's code (``inspect.getsource``) and its result, and whether the result lies in
the expected range, inside a sphinx-exercise ``solution`` directive, which the student build
hides and the teacher's build (``make book-teacher``) shows.  A solution that no longer runs
fails the build; a result outside its range is flagged on the page.

Reads runs only (through :mod:`cmlib.book.pages`); the commands are what students run.
"""
from __future__ import annotations

import inspect
import math
import textwrap
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import metrics as M
from ..errors import CmlibError
from .pages import find_page_runs

DATA = "data/classroom.h5"


@dataclass(frozen=True)
class Exercise:
    label: str
    title: str
    minutes: int
    goals: tuple[str, ...]
    prerequisites: tuple[str, ...]
    task: str
    commands: tuple[str, ...]
    expected: str                  # what to expect, with "{lo}" and "{hi}" for the range
    lo: float
    hi: float
    solve: Callable[[str], dict]   # profile -> {"value": float, "text": str}


# ---------------------------------------------------------------- solutions (shown in the teacher's build)

def solve_sigma(profile: str) -> dict:
    """The thesis's sigma (eq. 4.0.1) against std(x) for the basic CNN's best run."""
    p = find_page_runs("basic", profile).best.predictions["test"]
    x = p.pred - p.true
    sigma = np.sqrt(np.mean((np.abs(x) - np.abs(x).mean()) ** 2))     # eq. 4.0.1: the spread of |x|
    ratio = sigma / np.std(x)
    return {"value": ratio, "text": f"σ (4.0.1) = {sigma:.3f}, std(x) = {np.std(x):.3f} dex, ratio {ratio:.2f}; "
                                    f"for Gaussian residuals √(1 − 2/π) = {math.sqrt(1 - 2 / math.pi):.2f}."}


def solve_overfit(profile: str) -> dict:
    """Where the validation loss of the run without early stopping is lowest, and the final gap."""
    run = find_page_runs("basic", profile, experiment="basic_overfit").best
    h = run.history
    best_epoch = int(h["epoch"][np.nanargmin(h["val_loss"])])
    gap = h["val_loss"][-1] / h["loss"][-1]
    return {"value": best_epoch, "text": f"validation loss lowest at epoch {best_epoch} of {len(h['epoch'])}; "
                                         f"after the last epoch it is {gap:.1f}× the training loss (overfitting "
                                         f"when this grows while the training loss keeps falling)."}


def solve_gradient(profile: str) -> dict:
    """The largest stable learning rate of the one-neuron model of the CNN-fundamentals page."""
    from .. import data as D
    from .pages import count_feature
    from .profiles import get_profile

    d = D.load(get_profile(profile).data.path, bands="thesis")
    u = count_feature(d)                              # the page's input: standardised log10 source counts
    hessian = 2 * np.array([[np.mean(u * u), np.mean(u)], [np.mean(u), 1.0]])    # of the MSE in (w, b)
    alpha_max = 2 / np.linalg.eigvalsh(hessian).max()      # gradient descent converges for alpha < 2 / lambda_max
    return {"value": alpha_max, "text": f"the MSE is quadratic in (w, b) with Hessian eigenvalues "
                                        f"{np.round(np.linalg.eigvalsh(hessian), 3).tolist()}: steps converge for "
                                        f"α < 2/λ_max = {alpha_max:.3f}; α = 1.05 diverges, α = 0.3 converges."}


def solve_best_of(profile: str) -> dict:
    """How much "best of the seeds, picked on the test set" flatters the basic CNN."""
    runs = find_page_runs("basic", profile).finished
    sig = np.array([r.metrics["test"]["sigma"] for r in runs])
    optimism = 100 * (1 - sig.min() / sig.mean())
    return {"value": optimism, "text": f"test σ of the {len(sig)} seeds: {np.round(sig, 3).tolist()}; the best is "
                                       f"{optimism:.1f} % below their mean, an advantage picked on the test set."}


def solve_learned(profile: str) -> dict:
    """Whether the deep model learned: its test std(x) against predicting the mean training mass, and against
    predicting from the redshift alone."""
    pr = find_page_runs("resnet50v2", profile)
    p = pr.best.predictions
    v = M.judge_learning(p["train"], p["test"])
    ratio = v["std"] / v["reference_std"]
    z = (f", from the redshift alone {v['redshift_std']:.3f} dex (ratio {v['std'] / v['redshift_std']:.2f})"
         if math.isfinite(v["redshift_std"]) else "")
    return {"value": ratio, "text": f"ResNet50V2 std(x) = {v['std']:.3f} dex; predicting the mean "
                                    f"{v['reference_std']:.3f} dex (ratio {ratio:.2f}){z}; spread of its predictions "
                                    f"{v['spread']:.3f} dex. " + ("It learned." if v["learned"] else
                                                                  f"It did not learn: {v['reason']}.")}


def solve_calibration(profile: str) -> dict:
    """The ±1σ coverage of the basic CNN trained with the Gaussian likelihood."""
    p = find_page_runs("basic", profile, experiment="basic_nll").best.predictions["test"]
    u = M.uncertainty_metrics(p.pred, p.true, p.sigma)
    return {"value": 100 * u["coverage_1sigma"],
            "text": f"±1σ coverage {u['coverage_1sigma']:.0%} (68 % if calibrated), ±2σ {u['coverage_2sigma']:.0%} "
                    f"(95 %), pull std {u['pull_std']:.2f} (1 if calibrated)."}


# ---------------------------------------------------------------- the sheet

EXERCISES = (
    Exercise(
        "ex-sigma", "Why the thesis's σ = 0.13 dex is not a scatter of 0.13 dex", 15,
        ("read a metric's definition, not its name", "compute eq. (4.0.1) by hand from predictions"),
        ("the basic CNN's page", "numpy"),
        "Load the basic CNN's test predictions of your build and compute the thesis's σ (eq. 4.0.1) and the "
        "standard deviation of x = predicted − true. What is their ratio, and why?",
        ("make book PROFILE=classroom",
         "python -c \"from cmlib.book.pages import find_page_runs; "
         "p = find_page_runs('basic', 'classroom').best.predictions['test']; print(p.pred - p.true)\""),
        "a ratio between {lo} and {hi}: σ measures the spread of |x|, about 0.6 times the spread of x",
        0.50, 0.72, solve_sigma),
    Exercise(
        "ex-overfit", "Overfitting by hand", 20,
        ("recognise overfitting in a loss history", "see what early stopping protects against"),
        ("the basic CNN's page", "about a minute of CPU"),
        "Train the basic CNN without early stopping and find the epoch where the validation loss is lowest. "
        "What happens to the training and validation losses after it?",
        ("cmlib train --model basic --data data/classroom.h5 --epochs 60 --seeds 0 --early-stopping 0 "
         "--output-bias mean",
         "papermill notebooks/architecture.ipynb overfit.ipynb -p profile classroom -p model basic "
         "-p early_stopping 0 -p output_bias mean -p epochs 60 -p seeds 0 -p train_missing True"),
        "the lowest validation loss between epoch {lo} and {hi}; afterwards the training loss keeps falling "
        "and the validation loss does not",
        5, 45, solve_overfit),
    Exercise(
        "ex-gradient", "How large may the learning rate be?", 20,
        ("connect the learning rate to the curvature of the loss", "predict divergence before it happens"),
        ("the gradient-descent example of the CNN-fundamentals page", "a little linear algebra"),
        "In the one-neuron model of the CNN-fundamentals page, find the largest learning rate α for which gradient "
        "descent still converges: first by trying, then from the Hessian of the MSE.",
        ("make lab   # open notebooks/cnn_fundamentals.ipynb and change the alphas",),
        "α_max between {lo} and {hi} (2 divided by the largest eigenvalue of the Hessian)",
        0.9, 1.1, solve_gradient),
    Exercise(
        "ex-best-of", "The best seed, picked on the test set", 15,
        ("see why 'best of ten runs' flatters a model", "tell model selection from evaluation"),
        ("the basic CNN's page (its seeds)",),
        "Compare the best seed's test σ with the mean over the seeds. By how many percent does picking the best "
        "on the test set flatter the result?",
        ("cmlib train --model basic --data data/classroom.h5 --epochs 40 --seeds 0-1 --output-bias mean",),
        "between {lo} and {hi} % (with a few seeds; the thesis's ten flatter more)",
        0.0, 20.0, solve_best_of),
    Exercise(
        "ex-learned", "Did the deep model learn?", 15,
        ("judge a model against the simplest estimator", "read 'did not learn' from numbers, not from a plot"),
        ("the ResNet50V2 page",),
        "Compare ResNet50V2's test std(x) with that of predicting the mean training mass for every cluster. "
        "Did it learn? Then compare it with predicting from the redshift alone (the next row of its table): every "
        "network also gets z, so did it read anything from the images? Would more epochs help (look at its loss "
        "history)?",
        ("cmlib train --model resnet50v2 --data data/classroom.h5 --epochs 2 --seeds 0 --pad none --max-clusters 1000",),
        "a ratio std(x) / std(x of the mean predictor) between {lo} and {hi}, a range wide enough for both "
        "profiles: near 1 after two epochs on 1000 clusters, so not learned (below 0.95 it would beat the mean); "
        "the laptop profile's stored runs (tens of epochs on 7946 clusters) come out below 0.95 and beat the "
        "mean. Whether they also beat the redshift alone, the results page's fair table says",
        0.85, 1.15, solve_learned),
    Exercise(
        "ex-calibration", "Can a network say how sure it is?", 20,
        ("train with a Gaussian likelihood", "check a predicted uncertainty with its coverage"),
        ("the uncertainties section of the Beyond page", "about a minute of CPU"),
        "Train the basic CNN with the Gaussian negative log-likelihood and measure how often the true mass lies "
        "within ±1 predicted σ. Is the uncertainty calibrated?",
        ("cmlib train --model basic --data data/classroom.h5 --epochs 40 --seeds 0 --loss nll --output-bias mean",),
        "a ±1σ coverage between {lo} and {hi} % (68 % if calibrated)",
        50.0, 85.0, solve_calibration),
)


def get(label: str) -> Exercise:
    for e in EXERCISES:
        if e.label == label:
            return e
    raise KeyError(f"no exercise '{label}'; have: {', '.join(e.label for e in EXERCISES)}")


def _fmt(v: float) -> str:
    return f"{v:g}"


def exercise_markdown(label: str) -> str:
    """The exercise box: goals, prerequisites, time, task, commands, what to expect."""
    e = get(label)
    cmds = "\n".join(e.commands)
    return (f"````{{exercise}} {e.title}\n:label: {e.label}\n\n"
            f"**Learning goals:** {'; '.join(e.goals)}. **Prerequisites:** {'; '.join(e.prerequisites)}. "
            f"**Time:** {e.minutes} minutes.\n\n{e.task}\n\n```bash\n{cmds}\n```\n\n"
            f"**Expected:** {e.expected.format(lo=_fmt(e.lo), hi=_fmt(e.hi))}.\n````\n")


def solution_markdown(label: str, profile: str) -> str:
    """Run the solution on this build's runs; its code, result and range check in a solution directive."""
    e = get(label)
    code = textwrap.dedent(inspect.getsource(e.solve))
    try:
        out = e.solve(profile)
    except CmlibError as exc:      # the runs it reads are not in this build (e.g. still in the compute plan)
        return (f"````{{solution}} {e.label}\n:class: dropdown\n\nThis build (profile `{profile}`) does not have the "
                f"runs this solution reads ({exc}). Build the classroom profile (`make book PROFILE=classroom`) to "
                f"see it run.\n\nThe solution:\n\n```python\n{code}```\n````\n")
    inside = e.lo <= out["value"] <= e.hi
    check = ("within the expected range" if inside else
             f"**outside the expected range** [{_fmt(e.lo)}, {_fmt(e.hi)}] (the `{profile}` profile's runs differ "
             "from the classroom ones this range was set for, or something changed)")
    return (f"````{{solution}} {e.label}\n:class: dropdown\n\n{out['text']} Result: {out['value']:.3g}, {check}.\n\n"
            f"The solution, as it ran when this page was built:\n\n```python\n{code}```\n````\n")


def check_all(profile: str) -> list[tuple[str, float, bool]]:
    """Every solution's value and whether it lies in its range (for tests and the teacher)."""
    out = []
    for e in EXERCISES:
        v = e.solve(profile)["value"]
        out.append((e.label, v, e.lo <= v <= e.hi))
    return out
