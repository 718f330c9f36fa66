"""Numbers quoted from the thesis (Heim 2023), for side-by-side comparison only.

Nothing here is a result of cmlib: these are the published values of the
thesis, shown beside cmlib's own measurements in the book.  Each table keeps
the thesis's numbering.  Where the thesis is internally inconsistent, the note
says so rather than silently "correcting" the quote.
"""
from __future__ import annotations

#: Thesis Table 2: sizes of the data sets.
TABLE2 = {"complete": 7946, "train": 7151, "test_validation": 795}

#: Thesis Table 3: trainable parameters [million] and time per epoch on the
#: thesis's GPU [s] (basic CNN: "< 1 s", stored as 1.0 with ``epoch_time_upper_bound``).
TABLE3 = {
    "basic":          {"params_m": 0.30,  "epoch_s": 1.0},
    "vgg16":          {"params_m": 15.76, "epoch_s": 6.0},
    "vgg19":          {"params_m": 21.07, "epoch_s": 5.0},
    "resnet50":       {"params_m": 32.97, "epoch_s": 7.0},
    "resnet50v2":     {"params_m": 32.95, "epoch_s": 6.0},
    "resnet101":      {"params_m": 51.99, "epoch_s": 12.0},
    "resnet101v2":    {"params_m": 51.97, "epoch_s": 10.0},
    "resnet152":      {"params_m": 67.66, "epoch_s": 17.0},
    "resnet152v2":    {"params_m": 67.63, "epoch_s": 16.0},
    "efficientnetb7": {"params_m": 21.07, "epoch_s": 23.0},
}
#: Thesis Table 3 entries that do not describe the architecture of the text
#: (:data:`TABLE3_NOTES`): EfficientNet-B7's 21.07 M repeats VGG19's.
TABLE3_INCONSISTENT = frozenset({"efficientnetb7"})

TABLE3_NOTES = {
    "basic": "the thesis gives '< 1' s per epoch",
    "efficientnetb7": "the thesis's 21.07 M repeats VGG19's entry; the architecture it describes "
                      "(include_top=False, Flatten, z, Dense 512) has about 75.6 M trainable parameters",
}

#: Thesis Table 4: settings for the deep models.
TABLE4 = {
    "Pretraining (training catalogue)": "Yes (ImageNet)*",
    "Loss function": "MSE",
    "Optimizer": "Adam",
    "Learning rate": "0.001",
    "Dense units": "512*",
    "Dense activation": "ReLU",
    "Batch size": "32",
    "Training epochs": "4000*",
}
TABLE4_FOOTNOTE = ("*No pretraining for the basic CNN; its dense units follow Krippendorf et al. "
                   "(2023) (two layers of 100); its number of epochs is varied (early stopping).")

#: Thesis Table 5: the best of ten runs per model.  Losses are MSE after the
#: last epoch (basic CNN: at the epoch of lowest validation loss).  sigma and
#: mu are the thesis's eqs. 4.0.1 and 4.0.4 (sigma is the spread of |x|).
TABLE5 = {
    "basic":          {"train_loss": 0.046,  "val_loss": 0.047, "sigma_test": 0.13,  "mu_test": 0.0,    "sigma_train": 0.122, "mu_train": 0.003},
    "vgg16":          {"train_loss": 0.104,  "val_loss": 0.102, "sigma_test": 0.2,   "mu_test": -0.019, "sigma_train": 0.196, "mu_train": -0.027},
    "vgg19":          {"train_loss": 0.103,  "val_loss": 0.102, "sigma_test": 0.201, "mu_test": 0.014,  "sigma_train": 0.195, "mu_train": 0.006},
    "resnet50":       {"train_loss": 0.001,  "val_loss": 0.09,  "sigma_test": 0.185, "mu_test": -0.035, "sigma_train": 0.147, "mu_train": 0.04},
    "resnet50v2":     {"train_loss": 0.0001, "val_loss": 0.056, "sigma_test": 0.14,  "mu_test": 0.087,  "sigma_train": 0.127, "mu_train": 0.087},
    "resnet101":      {"train_loss": 0.0001, "val_loss": 0.093, "sigma_test": 0.182, "mu_test": 0.056,  "sigma_train": 0.142, "mu_train": 0.055},
    "resnet101v2":    {"train_loss": 0.0001, "val_loss": 0.064, "sigma_test": 0.148, "mu_test": 0.092,  "sigma_train": 0.993, "mu_train": 0.092},
    "resnet152":      {"train_loss": 0.0002, "val_loss": 0.114, "sigma_test": 0.201, "mu_test": 0.001,  "sigma_train": 0.150, "mu_train": 0.017},
    "resnet152v2":    {"train_loss": 0.0001, "val_loss": 0.052, "sigma_test": 0.134, "mu_test": 0.055,  "sigma_train": 0.319, "mu_train": 0.056},
    "efficientnetb7": {"train_loss": 0.0002, "val_loss": 0.101, "sigma_test": 0.183, "mu_test": 0.037,  "sigma_train": 0.190, "mu_train": 0.045},
}
TABLE5_NOTES = {
    "sign": "The thesis defines x = predicted - true (eq. 4.0.2) but reads mu > 0 as 'too low' "
            "predictions (Sect. 4); cmlib keeps the definition x = predicted - true, so mu > 0 "
            "means over-prediction.",
    "sigma": "The thesis's sigma (eq. 4.0.1) is the standard deviation of |x|, not of x. For "
             "Gaussian residuals std(|x|) = 0.60 std(x), so sigma = 0.13 means std(x) of about 0.2 dex.",
    "resnet152": "Sect. 4.3.5 says no ResNet152 run reached sigma < 2; Table 5 lists 0.201 (the "
                 "text probably means 0.2).",
    "resnet152v2": "Sect. 4.3.6 quotes sigma = 1.34 and 1.30 for the basic CNN: a factor-10 typo "
                   "for 0.134 and 0.13.",
}

#: Display names as the thesis writes them: the registry's default (:func:`cmlib.models.register`);
#: everything else reads a model's name from the registry (``get_spec(m).display_name``).
DISPLAY_NAMES = {
    "basic": "Basic CNN",
    "krippendorf2023": "Krippendorf et al. (2023)",
    "vgg16": "VGG16",
    "vgg19": "VGG19",
    "resnet50": "ResNet50",
    "resnet50v2": "ResNet50V2",
    "resnet101": "ResNet101",
    "resnet101v2": "ResNet101V2",
    "resnet152": "ResNet152",
    "resnet152v2": "ResNet152V2",
    "efficientnetb7": "EfficientNet-B7",
}

#: Thesis section of each architecture's results.
SECTIONS = {
    "basic": "4.1", "vgg16": "4.2.1", "vgg19": "4.2.2", "resnet50": "4.3.1", "resnet50v2": "4.3.2",
    "resnet101": "4.3.3", "resnet101v2": "4.3.4", "resnet152": "4.3.5", "resnet152v2": "4.3.6",
    "efficientnetb7": "4.4.1",
}

#: What the thesis reports for each architecture (paraphrased from its "Training insights" and
#: "Best performing model" subsections), shown at the top of each architecture page.
FINDINGS = {
    "basic": (
        "Sect. 4.1: trained without stopping, the validation loss of the basic CNN reaches its minimum "
        "after about 90 epochs and then rises while the training loss keeps falling: the network "
        "overfits (Fig. 22, 4000 epochs). Halving the learning rate to 5e-4 moves the minimum to about "
        "twice as many epochs without a clear gain (Fig. 25). With early stopping, test and training "
        "predictions look alike (Figs. 26-27), and the best of ten runs reaches sigma = 0.13 and mu = 0 "
        "on the test set. The architecture and its hyperparameters come from Krippendorf et al. (2023)."),
    "vgg16": (
        "Sect. 4.2.1: every VGG16 run cut its predictions off near log M = 14.3-14.4, and some runs "
        "improved early and then jumped to a worse state they never left (Fig. 28: after about 25 "
        "epochs both losses rose). Horizontal lines in the predictions show the network returning the "
        "same mass for many clusters. The best run did not overfit; test sigma = 0.20, mu = -0.019."),
    "vgg19": (
        "Sect. 4.2.2: like VGG16: predictions confined to about 13.4-14.4, widely spread, losses flat "
        "and close together (Fig. 30). The thesis suspects the network found no useful filters and only "
        "learned to spread predictions over the populated mass range; test sigma = 0.201, mu = 0.014."),
    "resnet50": (
        "Sect. 4.3.1: training was very random: some runs overfitted (Fig. 32), others never settled "
        "and the validation loss spiked every few epochs. The run with the lowest test sigma (0.171) "
        "had mu = 0.18 and wild training-set outliers, so the thesis reported another run "
        "(sigma = 0.185, mu = -0.035), whose training predictions show overfitting (Fig. 35)."),
    "resnet50v2": (
        "Sect. 4.3.2: nine of ten runs under-predicted (mu > 0 in the thesis's reading) and three reached "
        "sigma < 0.15. The best run learned useful features only after about 3600 epochs (Fig. 36) and "
        "became the second-best deep model: test sigma = 0.14, mu = 0.087. The thesis recommends "
        "ResNet50V2 as the starting point for further work."),
    "resnet101": (
        "Sect. 4.3.3: many runs failed, by low predictions or overfitting. The best run's validation loss "
        "had its minimum after a few hundred epochs and stayed flat after about 1700 (Fig. 38); test "
        "predictions are much worse than training ones (overfitting, Fig. 39): sigma = 0.182, mu = 0.056."),
    "resnet101v2": (
        "Sect. 4.3.4: only two runs reached sigma < 0.18. The best run (test sigma = 0.148, the third "
        "best deep model) has the largest offset of all, mu = 0.092, and a handful of wild training-set "
        "predictions that make its training sigma 0.993 (Fig. 41)."),
    "resnet152": (
        "Sect. 4.3.5: the least efficient ResNet: three runs blew up to sigma > 10^4, with validation "
        "spikes at many epochs (Fig. 42). The best run over-predicts light and under-predicts heavy "
        "clusters, so mu is near zero (0.001) while sigma = 0.201 (Fig. 44)."),
    "resnet152v2": (
        "Sect. 4.3.6: the most successful deep model: five runs reached small sigma (the text writes "
        "1.8, meaning 0.18). Its best run improved abruptly after about 1800 epochs and did not overfit "
        "(Fig. 45); test sigma = 0.134 (the text's '1.34' is a typo), mu = 0.055; a few wild "
        "training-set predictions raise its training sigma to 0.319 (Fig. 46)."),
    "efficientnetb7": (
        "Sect. 4.4.1: no run produced useful predictions: they are cut off near log M = 13.5, the "
        "validation loss spikes throughout (Fig. 47), and even the training predictions are far from the "
        "identity (Fig. 48). Test sigma = 0.183, mu = 0.037; the thesis does not recommend the model."),
    "krippendorf2023": (
        "Not trained in the thesis: this is the published baseline of Krippendorf et al. (2023; A&A 682, "
        "A132, 2024), all ten bands, 2x2 convolutions with 10 filters, random flips and rotations, and a "
        "Gaussian likelihood that predicts a mass and its uncertainty (Adam lr 1e-4, batch 100, ~500 "
        "epochs)."),
}


def table3(input_shape=(71, 71, 3)) -> list[dict]:
    """Thesis Table 3 reproduced: trainable parameters and FLOPs of each thesis model beside the thesis's.

    Every model of :data:`TABLE3` is built from scratch in the thesis configuration
    (``input_shape``, default 71 x 71 x 3, Flatten head, Dense 512; the basic CNN at
    50 x 50 with the same bands: :func:`cmlib.models.measure`), with the relative
    difference ``measured / thesis - 1``.  ``thesis_consistent`` is False where the
    thesis's entry does not describe its own architecture (``note`` says why).  Times
    per epoch are measured by ``benchmarks/bench_models.py``, not here.
    """
    from .. import models

    rows = []
    for r in models.measure(list(TABLE3), input_shape):
        entry = TABLE3[r["name"]]
        rows.append({**r, "thesis_params_m": entry["params_m"], "rel_diff": r["params_m"] / entry["params_m"] - 1.0,
                     "thesis_consistent": r["name"] not in TABLE3_INCONSISTENT,
                     "thesis_epoch_s_gpu": entry["epoch_s"],
                     "note": TABLE3_NOTES.get(r["name"], "") if r["name"] in TABLE3_INCONSISTENT else ""})
    return rows
