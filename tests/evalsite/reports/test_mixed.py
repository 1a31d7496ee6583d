"""The mixed models and the GEE as the report's tests of consent: Holm-adjusted instrument terms,
the between-instrument contrasts, and instruments whose answers all agree (complete separation)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import special, stats
from statsmodels.stats.multitest import multipletests

from evalsite.reports.analysis import ReportConfig, build_report, mixed
from evalsite.reports.analysis.glmm import CrossedLogit
from evalsite.reports.analysis.simulate import SimulationSpec, simulate_answers

NOT_ESTIMABLE = "every answer agrees (or none does): its log-odds is not estimable"


@pytest.fixture(scope="module")
def answers() -> pd.DataFrame:
    spec = SimulationSpec(n_participants=12, trials_per_instrument=6, careless_share=0, seed=8)
    return simulate_answers(spec)[0]


def _all_agree(answers: pd.DataFrame, instrument: str) -> pd.DataFrame:
    """The answers with every scored answer to `instrument` agreeing with the model."""
    rows = (answers["instrument"] == instrument) & answers["model_choice"].notna()
    out = answers.copy()
    out.loc[rows, "chosen"] = out.loc[rows, "model_choice"]
    out.loc[rows, "agree"] = 1.0
    first = out["chosen"] == out["displayed_first"]
    out.loc[rows, "chosen_position"] = np.where(first, "A", "B")[rows]
    return out


@pytest.fixture(scope="module")
def drums_all_agree() -> pd.DataFrame:
    # The reviewer's case: 10 participants; drums (8 trials) all agree, bass about 0.69.
    spec = SimulationSpec(
        consent={"drums": 0.8, "bass": 0.7},
        n_participants=10,
        trials_per_instrument=8,
        careless_share=0,
        seed=3,
    )
    return _all_agree(simulate_answers(spec)[0], "drums")


def _instrument_rows(table: pd.DataFrame, answers: pd.DataFrame) -> pd.Series:
    return table["term"].isin(set(answers["instrument"]))


@pytest.mark.parametrize("fit", [mixed.laplace_model, mixed.gee_check])
def test_it_holm_adjusts_the_instrument_terms_and_leaves_covariates_unadjusted(answers, fit):
    table = fit(answers, 0.95)[0]
    inst = _instrument_rows(table, answers)
    assert inst.sum() == 5
    # Reference: statsmodels' multipletests (an implementation independent of proportions.holm).
    expected = multipletests(table.loc[inst, "p_val"], method="holm")[1]
    assert table.loc[inst, "p_adj"].to_numpy() == pytest.approx(expected, rel=1e-12)
    assert table.loc[~inst, "p_adj"].isna().all()


def _with_mean_covariates_sampled(data: pd.DataFrame, X: pd.DataFrame, fit) -> np.ndarray:
    """The fit's covariance with each instrument term's variance widened by the sampling of its
    answers' mean covariates over its trials, by hand: the trial means d_j of the covariates
    (centred within instrument) with n_j answers each, C = T / (T - 1) sum (n_j d_j)(n_j d_j)' / N^2
    (the trial-clustered variance of a mean), and the term's error about the log-odds at the
    population mean, (beta_i - its value at the mean) - b'(population mean - mean), has variance
    V_ii + b'Cb, b'Cb estimated without bias by b^'Cb^ - trace(V_b C), truncated at 0."""
    names = list(X.columns)
    covariates = [k for k, name in enumerate(names) if name not in set(data["instrument"])]
    b, v_b = fit.beta[covariates], fit.beta_cov[np.ix_(covariates, covariates)]
    cov = fit.beta_cov.copy()
    for inst, part in X.groupby(data["instrument"].to_numpy()):
        by_trial = part.iloc[:, covariates].groupby(data.loc[part.index, "trial"].to_numpy())
        n_j, d = by_trial.size().to_numpy(float), by_trial.mean().to_numpy(float)
        w = n_j[:, None] * d / n_j.sum()
        C = len(n_j) / (len(n_j) - 1) * w.T @ w
        i = names.index(inst)
        cov[i, i] += max(b @ C @ b - np.trace(v_b @ C), 0.0)
    return cov


def test_it_compares_instruments_pairwise_from_the_laplace_fit(answers):
    from evalsite.reports.analysis.consent import scored

    fixed, contrasts, _ = mixed.laplace_model(answers, 0.9)
    # Hand computation from the fitted coefficients and their covariance.
    data, y, X, _ = mixed.design(answers)
    fit = CrossedLogit(
        y, X.to_numpy(float), [data["participant"].to_numpy(), data["trial"].to_numpy()]
    ).fit()
    names = list(X.columns)
    cov = _with_mean_covariates_sampled(data, X, fit)
    row = contrasts.set_index("term").loc["drums - others"]
    i, j = names.index("drums"), names.index("others")
    diff = fit.beta[i] - fit.beta[j]
    se = np.sqrt(cov[i, i] + cov[j, j] - 2 * cov[i, j])
    assert row["estimate"] == pytest.approx(diff, rel=1e-9)
    assert row["se"] == pytest.approx(se, rel=1e-9)
    assert row["stat"] == pytest.approx(diff / se, rel=1e-9)
    # Welch df from the two terms' variances, each on its instrument's trials - 1.
    trials = data.groupby("instrument")["trial"].nunique()
    v, d = np.array([cov[i, i], cov[j, j]]), trials[["drums", "others"]] - 1
    assert row["df"] == pytest.approx(v.sum() ** 2 / (v**2 / d.to_numpy()).sum(), rel=1e-9)
    assert row["ci_low"] == pytest.approx(diff - stats.t.ppf(0.95, row["df"]) * se, rel=1e-9)
    assert len(contrasts) == 10  # every pair of the five instruments, once
    assert contrasts["p_adj"].to_numpy() == pytest.approx(
        multipletests(contrasts["p_val"], method="holm")[1], rel=1e-12
    )
    assert (contrasts["n"] == len(scored(answers))).all()
    inst = fixed.set_index("term")["estimate"]
    assert row["estimate"] == pytest.approx(inst["drums"] - inst["others"], rel=1e-12)


def test_it_computes_contrasts_as_statsmodels_wald_test_does():
    # Independent source: statsmodels' GLM t_test of the same linear contrasts (Wald z).
    rng = np.random.default_rng(4)
    group = rng.integers(0, 3, 600)
    X = np.column_stack([(group == g).astype(float) for g in range(3)] + [rng.normal(size=600)])
    eta = np.array([0.2, 1.0, -0.4])[group] + 0.5 * X[:, 3]
    y = (rng.uniform(size=600) < special.expit(eta)).astype(float)
    glm = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    ours = mixed.wald_contrasts(["a", "b", "c"], glm.params[:3], glm.cov_params()[:3, :3], 600)
    reference = glm.t_test(np.array([[1, -1, 0, 0], [1, 0, -1, 0], [0, 1, -1, 0]]))
    assert list(ours["term"]) == ["a - b", "a - c", "b - c"]
    assert ours["estimate"].to_numpy() == pytest.approx(reference.effect, rel=1e-10)
    assert ours["se"].to_numpy() == pytest.approx(reference.sd, rel=1e-10)
    assert ours["stat"].to_numpy() == pytest.approx(reference.tvalue, rel=1e-10)
    assert ours["p_val"].to_numpy() == pytest.approx(reference.pvalue, rel=1e-8)
    assert ours[["ci_low", "ci_high"]].to_numpy() == pytest.approx(reference.conf_int(), rel=1e-8)


def test_it_matches_a_glms_contrasts_when_there_are_no_random_effects():
    # With no participant or trial variation the Laplace fit is an ordinary logistic regression:
    # its contrasts equal statsmodels' GLM t_test on the same design.
    rng = np.random.default_rng(6)
    p, t = np.meshgrid(np.arange(30), np.arange(40), indexing="ij")
    p, t = p.ravel(), t.ravel()
    inst = t % 3
    X = np.column_stack([(inst == g).astype(float) for g in range(3)])
    y = (rng.uniform(size=p.size) < special.expit(np.array([0.3, 1.2, -0.2])[inst])).astype(float)
    fit = CrossedLogit(y, X, [p, t]).fit()
    ours = mixed.wald_contrasts(["a", "b", "c"], fit.beta, fit.beta_cov, len(y))
    glm = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    reference = glm.t_test(np.array([[1, -1, 0], [1, 0, -1], [0, 1, -1]]))
    assert ours["estimate"].to_numpy() == pytest.approx(reference.effect, abs=0.02)
    assert ours["se"].to_numpy() == pytest.approx(reference.sd, rel=0.1)


def test_it_reports_the_mixed_models_when_every_answer_to_one_instrument_agrees(drums_all_agree):
    report = build_report(drums_all_agree, ReportConfig(n_boot=50))
    for name in ("mixed", "mixed_laplace", "mixed_probability", "gee", "instrument_contrasts"):
        assert name in report.tables, (name, report.messages)
        table = report.tables[name].set_index("term")
        assert "drums" not in table.index and "drums - bass" not in table.index, name
    for name, spread in (("mixed", "posterior_sd"), ("mixed_laplace", "se"), ("gee", "se")):
        bass = report.tables[name].set_index("term").loc["bass"]
        assert 0.2 < bass["estimate"] < 2.0 and 0 < bass[spread] < 1, (name, bass)
    texts = [
        m["text"]
        for m in report.messages
        if m["level"] == "warning" and m["part"] in {"mixed", "gee"}
    ]
    said = [t for t in texts if NOT_ESTIMABLE in t]
    assert len(said) == 1 and "drums" in said[0] and "crossed" in said[0], texts
    assert not [t for t in texts if "not computed" in t], texts


def test_it_leaves_a_separated_instrument_out_of_the_gee_and_says_so(drums_all_agree):
    table, notes = mixed.gee_check(drums_all_agree, 0.95)
    assert list(table["term"][:1]) == ["bass"] and np.isfinite(table["estimate"]).all()
    (warning,) = [text for level, text in notes if level == "warning"]
    assert warning.startswith("drums: ") and NOT_ESTIMABLE in warning


@pytest.mark.parametrize("fit", [mixed.laplace_model, mixed.gee_check])
def test_it_counts_a_separated_instrument_in_the_holm_family_as_p_1(drums_all_agree, fit):
    # drums is left out of the fit (no finite log-odds): its test is undefined, and like every
    # undefined p in the project it counts in the instruments' Holm family as p = 1, so bass
    # is adjusted in a family of 2 (min(1, 2 p)), not alone.
    bass = fit(drums_all_agree, 0.95)[0].set_index("term").loc["bass"]
    assert bass["p_adj"] == pytest.approx(min(1.0, 2 * bass["p_val"]), rel=1e-12)


def test_it_counts_the_pairs_with_a_separated_instrument_in_the_contrasts_holm_family(answers):
    # drums left out of the fit: its 4 pairs with the others are untested (undefined), so the 6
    # tested pairs are adjusted in the family of all 10, the untested ones as p = 1.
    contrasts = mixed.laplace_model(_all_agree(answers, "drums"), 0.95)[1]
    assert len(contrasts) == 6 and not contrasts["term"].str.contains("drums").any()
    p = np.r_[contrasts["p_val"].to_numpy(), np.ones(4)]
    expected = multipletests(p, method="holm")[1][:6]  # statsmodels, the untested pairs as 1
    assert contrasts["p_adj"].to_numpy() == pytest.approx(expected, rel=1e-12)


def test_it_says_in_which_holm_families_a_separated_instrument_counts_as_p_1(answers):
    """Review r2 F4: with drums left out, instrument_contrasts shows 6 rows adjusted over 10
    pairs; the report must say so, or p_adj cannot be recomputed from what it shows."""
    from evalsite.reports.rendering.summary import markdown_summary, note

    report = build_report(_all_agree(answers, "drums"), ReportConfig(n_boot=20))
    assert len(report.tables["instrument_contrasts"]) == 6
    (said,) = [
        m for m in report.messages if m["text"].startswith("drums: ") and NOT_ESTIMABLE in m["text"]
    ]
    text = said["text"]
    assert said["level"] == "warning" and "counts in their Holm families as p = 1" in text, text
    assert "its term among the 5 instrument terms of mixed_laplace and gee" in text, text
    assert "its 4 pairs among the 10 pairs of instrument_contrasts (6 shown)" in text, text
    assert said in report.to_dict()["messages"]  # report.json
    assert text in markdown_summary(report)  # summary.md
    for name in ("mixed_laplace", "gee", "instrument_contrasts"):
        assert "left out of the fit counts as p = 1" in note(name), name


def test_it_leaves_out_an_instrument_with_a_single_answer_instead_of_returning_nan(answers):
    some = _all_agree(answers, "drums")
    bass = some.index[(some["instrument"] == "bass") & some["model_choice"].notna()]
    some = some.drop(bass[1:])  # one bass answer left
    table, notes = mixed.gee_check(some, 0.95)
    assert {"drums", "bass"}.isdisjoint(table["term"])
    assert np.isfinite(table[["estimate", "se"]].to_numpy()).all()
    warned = " ".join(text for level, text in notes if level == "warning")
    assert "drums: " in warned and "bass: " in warned


def test_it_warns_when_a_log_odds_comes_out_implausibly_large(answers):
    # The model's margin separates the answers perfectly: its slope runs off to infinity.
    sep = answers.copy()
    scored_rows = sep["model_choice"].notna()
    agree = sep["model_margin"] > 0.5
    sep.loc[scored_rows, "chosen"] = np.where(
        agree, sep["model_choice"], sep["model_choice"].map({"a": "b", "b": "a"})
    )[scored_rows]
    sep.loc[scored_rows, ["chosen_position", "agree"]] = None
    report = build_report(sep, ReportConfig(n_boot=20, mixed_model=False))
    (message,) = [m for m in report.messages if m["text"].startswith("gee: ")]
    assert message["level"] == "warning"
    assert "model_margin" in message["text"] and "above 10" in message["text"]


def test_it_flags_nan_and_huge_log_odds():
    table = pd.DataFrame(
        {
            "term": ["drums", "bass", "piano", "sd(trial)"],
            "estimate": [0.5, 18.97, np.nan, 30.0],
            "se": [0.2, 0.73, np.nan, np.nan],
        }
    )
    assert mixed.implausible_terms(table) == ["bass", "piano"]


def _same_rate_for_everyone(answers: pd.DataFrame) -> pd.DataFrame:
    """Every participant agrees on 7 of each 10 scored answers to each instrument (their 1st-7th,
    11th-17th, ..., shifted by one per participant): the participant SD is 0 in these data."""
    out = answers.copy()
    scored = out[~out["is_catch"] & out["agree"].notna()]
    rank = scored.groupby(["participant", "instrument"]).cumcount()
    shift = pd.factorize(scored["participant"])[0]
    out.loc[scored.index, "agree"] = (((rank + shift) % 10) < 7).astype(float)
    return out


def test_it_blanks_the_interval_of_a_participant_sd_the_data_put_at_zero():
    # The reviewer's demo: 8 simulated participants with one agreement rate. The fit stops at the
    # SD's lower bound, where a finite curvature gave "0.001 [0.000, 3.01e+134]".
    spec = SimulationSpec(n_participants=8, participant_sd=0.0, seed=0)
    answers = _same_rate_for_everyone(simulate_answers(spec)[0])
    table, _, notes = mixed.laplace_model(answers, 0.95)
    sd = table.set_index("term").loc["sd(participant)"]
    assert sd["estimate"] < 0.01
    assert np.isnan(sd["ci_low"]) and np.isnan(sd["ci_high"]), sd
    said = [text for level, text in notes if level == "info" and "sd(participant)" in text]
    assert len(said) == 1 and "poorly determined" in said[0], notes


def test_it_keeps_the_interval_of_a_participant_sd_the_data_determine():
    spec = SimulationSpec(n_participants=8, participant_sd=0.5, seed=1)
    table, _, notes = mixed.laplace_model(simulate_answers(spec)[0], 0.95)
    sd = table.set_index("term").loc["sd(participant)"]
    assert 0.05 < sd["ci_low"] < sd["estimate"] < sd["ci_high"] < 2.0, sd
    assert not [text for _, text in notes if "sd(participant)" in text], notes


def test_it_reports_the_variational_fit_as_descriptive_without_tests(answers):
    # The mean-field posterior sd is far below the sampling se (the reviewer's 40 x 30 case: 0.063
    # against the Laplace fit's 0.174; 39-55 % false positives at consent 0.5): no test, no se.
    table, notes = mixed.mixed_model(answers, 0.95)
    fixed = table[~table["term"].str.startswith("sd(")]
    assert fixed[["se", "stat", "p_val", "p_adj"]].isna().all().all(), fixed
    assert (fixed["posterior_sd"] > 0).all()
    assert fixed["ci_low"].lt(fixed["estimate"]).all()
    assert any("too narrow" in text for _, text in notes), notes


def test_it_takes_mixed_probability_from_the_laplace_fit_whichever_fits_ran(answers):
    n = int((~answers["is_catch"]).sum())
    for max_answers in (n, n - 1):
        config = ReportConfig(n_boot=20, bayes_max_answers=max_answers)
        report = build_report(answers, config)
        probability = report.tables["mixed_probability"].set_index("term")
        laplace = report.tables["mixed_laplace"].set_index("term")
        insts = list(probability.index)
        assert list(probability["fit"]) == ["laplace"] * len(insts)
        for col in ("estimate", "ci_low", "ci_high"):
            expected = special.expit(laplace.loc[insts, col].to_numpy())
            assert probability[col].to_numpy() == pytest.approx(expected, rel=1e-12), col


def _margins_differ(seed: int, n_p: int = 20, n_t: int = 12) -> pd.DataFrame:
    """The reviewer's case (repro_margin.py): drums margins U(0.6, 1), bass U(0, 0.4), slope 3,
    answers symmetric about each instrument's own mid margin, so each one's consent on its own
    trials is exactly 0.5. Participant and trial SD 0.5 on the logit scale, shuffled order."""
    from evalsite.reports.analysis.inputs import normalise_answers

    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.5, n_p)
    rows = []
    for inst, (lo, hi) in {"drums": (0.6, 1.0), "bass": (0.0, 0.4)}.items():
        margin, b = rng.uniform(lo, hi, n_t), rng.normal(0, 0.5, n_t)
        eta = a[:, None] + b[None, :] + 3.0 * (margin[None, :] - (lo + hi) / 2)  # (P, T)
        agree = rng.random((n_p, n_t)) < special.expit(eta)
        for i, j in itertools.product(range(n_p), range(n_t)):
            model = rng.choice(["a", "b"])
            other = "b" if model == "a" else "a"
            rows.append(
                {
                    "participant": i,
                    "trial": f"{inst}{j}",
                    "instrument": inst,
                    "model_margin": margin[j],
                    "model_choice": model,
                    "chosen": model if agree[i, j] else other,
                    "displayed_first": rng.choice(["a", "b"]),
                }
            )
    raw = pd.DataFrame(rows)
    order = raw.groupby("participant")["trial"].transform(lambda s: rng.permutation(len(s)))
    return normalise_answers(raw.assign(trial_index=order.astype(float)))


@pytest.mark.parametrize("fit", [mixed.laplace_model, mixed.mixed_model, mixed.gee_check])
def test_it_estimates_each_instruments_consent_at_its_own_trials_margin(fit):
    # One large dataset (40 participants x 20 trials each): before, drums came out at 0.28 and
    # bass at 0.73 (p_adj 0.003), the log-odds at the pooled mean margin.
    table = fit(_margins_differ(seed=2, n_p=40, n_t=20), 0.95)[0].set_index("term")
    for inst in ("drums", "bass"):
        assert special.expit(table.loc[inst, "estimate"]) == pytest.approx(0.5, abs=0.1), inst
    assert 1.0 < table.loc["model_margin", "estimate"] < 6.0  # true slope 3


def test_it_counts_the_sampling_of_each_instruments_mean_margin_in_its_se():
    # The margin case: each instrument term is its log-odds at its trials' mean margin, which
    # is a sample mean of 12 margins; with slope 3 it moves the term by 3 (mean - 0.8) around
    # the population's 0 (sd about 0.1 per term). Left out, the contrast's se was 0.264 where
    # its estimates spread 0.303 and it rejected 0.077 (calibration contrast-margin).
    answers = _margins_differ(seed=7)
    fixed, contrasts, _ = mixed.laplace_model(answers, 0.95)
    data, y, X, _ = mixed.design(answers)
    fit = CrossedLogit(
        y, X.to_numpy(float), [data["participant"].to_numpy(), data["trial"].to_numpy()]
    ).fit()
    names, cov = list(X.columns), _with_mean_covariates_sampled(data, X, fit)
    terms = fixed.set_index("term")
    for inst in ("drums", "bass"):
        k = names.index(inst)
        assert terms.loc[inst, "se"] == pytest.approx(np.sqrt(cov[k, k]), rel=1e-9)
        assert terms.loc[inst, "se"] > fit.beta_se[k] * 1.02, inst
    for name in ("model_margin", "model_shown_first", "trial_index_per_100"):
        assert terms.loc[name, "se"] == pytest.approx(fit.beta_se[names.index(name)], rel=1e-9)
    i, j = names.index("drums"), names.index("bass")
    se = np.sqrt(cov[i, i] + cov[j, j] - 2 * cov[i, j])
    assert contrasts.set_index("term").loc["drums - bass", "se"] == pytest.approx(se, rel=1e-9)


def test_it_holds_the_level_of_the_instrument_tests_when_margins_differ_by_instrument():
    # Small seeded check: 12 datasets of the reviewer's case. Before, 94/200 (drums) and 104/200
    # (bass) rejected, and the contrast 126/200; at nominal 0.05 one of 12 is already generous.
    rejections = 0
    for seed in range(12):
        fixed, contrasts, _ = mixed.laplace_model(_margins_differ(seed=100 + seed), 0.95)
        terms = fixed.set_index("term")
        rejections += int((terms.loc[["drums", "bass"], "p_adj"] < 0.05).any())
        rejections += int(contrasts.set_index("term").loc["drums - bass", "p_adj"] < 0.05)
    assert rejections <= 3, rejections


def _few_trials(seed: int, n_p: int = 30, n_t: int = 5, sd_t: float = 1.0) -> pd.DataFrame:
    """Two instruments at consent 0.5 on n_t trials each (trial SD sd_t, participant SD 0.5 on the
    logit scale; sd_t 1 is the review's sim_mixed.py setting), as the export's answers."""
    from evalsite.reports.analysis.inputs import normalise_answers

    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.5, n_p)
    rows = []
    for inst in ("drums", "bass"):
        b, margin = rng.normal(0, sd_t, n_t), rng.uniform(0, 1, n_t)
        agree = rng.random((n_p, n_t)) < special.expit(a[:, None] + b[None, :])  # (P, T)
        for i, j in itertools.product(range(n_p), range(n_t)):
            rows.append(
                {
                    "participant": i,
                    "trial": f"{inst}{j}",
                    "instrument": inst,
                    "model_margin": margin[j],
                    "model_choice": "a",
                    "chosen": "a" if agree[i, j] else "b",
                    "displayed_first": "a" if (i + j) % 2 else "b",
                    "trial_index": float(j),
                }
            )
    return normalise_answers(pd.DataFrame(rows))


def test_it_tests_the_laplace_instrument_terms_against_t_on_the_trials_df():
    fixed, contrasts, _ = mixed.laplace_model(_few_trials(seed=1), 0.95)
    terms = fixed.set_index("term")
    for inst in ("drums", "bass"):
        row = terms.loc[inst]
        assert row["df"] == 4  # 5 trials of the instrument, less 1
        assert row["p_val"] == pytest.approx(2 * stats.t.sf(abs(row["stat"]), 4), rel=1e-9)
        half = stats.t.ppf(0.975, 4) * row["se"]
        assert row["ci_high"] - row["estimate"] == pytest.approx(half, rel=1e-9)
    # Welch-Satterthwaite over the two terms' variances (Welch 1947), each on its 4 df.
    v = terms.loc[["drums", "bass"], "se"].to_numpy() ** 2
    row = contrasts.set_index("term").loc["drums - bass"]
    assert row["df"] == pytest.approx(v.sum() ** 2 / (v**2 / 4).sum(), rel=1e-9)
    assert row["p_val"] == pytest.approx(2 * stats.t.sf(abs(row["stat"]), row["df"]), rel=1e-9)


@pytest.mark.slow  # a null simulation of many fits
def test_it_holds_the_level_of_the_laplace_test_with_five_trials():
    # The review's sim_mixed.py: the normal reference rejected 0.160 at 30 x 5 (400 datasets).
    # 40 seeded datasets x 2 instruments here.
    rejected = 0
    for seed in range(40):
        terms = mixed.laplace_model(_few_trials(seed=200 + seed), 0.95)[0].set_index("term")
        rejected += int((terms.loc[["drums", "bass"], "p_val"] < 0.05).sum())
    assert rejected / 80 < 0.09, rejected


def _plain_sandwich_se(answers: pd.DataFrame) -> pd.Series:
    """The GEE's se by statsmodels' plain robust (sandwich) covariance, by term."""
    data, y, X, _ = mixed.design(answers)
    model = sm.GEE(
        y,
        X.to_numpy(float),
        groups=pd.factorize(data["participant"])[0],
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    )
    return pd.Series(np.asarray(model.fit(cov_type="robust").bse), index=X.columns)


def test_it_gives_the_gee_a_small_sample_se_larger_than_the_plain_sandwich():
    # 20 participants: the plain sandwich is biased down with so few clusters (Mancl & DeRouen
    # 2001, Biometrics 57(1)); the table's se is their bias-reduced one, as statsmodels computes
    # it with cov_type="bias_reduced".
    answers = _few_trials(seed=3, n_p=20, n_t=10, sd_t=0.0)
    table = mixed.gee_check(answers, 0.95)[0].set_index("term")
    plain = _plain_sandwich_se(answers)
    for term in ("drums", "bass"):
        assert table.loc[term, "se"] > plain[term] * 1.01, term
    data, y, X, _ = mixed.design(answers)
    reduced = sm.GEE(
        y,
        X.to_numpy(float),
        groups=pd.factorize(data["participant"])[0],
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    ).fit(cov_type="bias_reduced")
    assert table.loc[list(X.columns), "se"].to_numpy() == pytest.approx(
        np.asarray(reduced.bse), rel=1e-9
    )


def test_it_tests_the_gee_terms_against_t_on_the_participants_less_one():
    table = mixed.gee_check(_few_trials(seed=4, n_p=20, n_t=10, sd_t=0.0), 0.95)[0]
    assert (table["df"] == 19).all()  # 20 participants (the clusters), less 1
    for _, row in table.iterrows():
        assert row["p_val"] == pytest.approx(2 * stats.t.sf(abs(row["stat"]), 19), rel=1e-9)
        half = stats.t.ppf(0.975, 19) * row["se"]
        assert row["ci_high"] - row["estimate"] == pytest.approx(half, rel=1e-9)
        assert row["estimate"] - row["ci_low"] == pytest.approx(half, rel=1e-9)


@pytest.mark.slow  # a null simulation of many fits
def test_it_holds_the_level_of_the_gee_test_with_twenty_participants():
    # No trial effect, so clustering by participant is all the dependence the GEE must allow
    # for. 100 seeded datasets x 2 instruments = 200 terms at 20 x 10; calibration gee measured
    # 0.028-0.063 (0.043 at 20 x 10). A calibrated test exceeds 22 rejections with probability
    # 0.0002 (0.002 at a true rate of 0.06; scipy.stats.binom.sf(22, 200, p)); with trial SD 1,
    # which the GEE does not allow for, it rejected about 0.3.
    rejected = 0
    for seed in range(100):
        answers = _few_trials(seed=400 + seed, n_p=20, n_t=10, sd_t=0.0)
        terms = mixed.gee_check(answers, 0.95)[0].set_index("term")
        rejected += int((terms.loc[["drums", "bass"], "p_val"] < 0.05).sum())
    assert rejected <= 22, rejected


def test_it_fits_the_sds_by_the_restricted_likelihood_when_asked():
    # The calibration's check of the restricted (REML-type) Laplace fit: the report keeps maximum
    # likelihood (docs/statistics.md: restricted, the contrast's level overshot to 0.035).
    answers = _few_trials(seed=1)
    data, y, X, _ = mixed.design(answers)
    groups = [data["participant"].to_numpy(), data["trial"].to_numpy()]
    for restricted in (False, True):
        fit = CrossedLogit(y, X.to_numpy(float), groups, restricted).fit()
        fixed, _, _ = mixed.laplace_model(answers, 0.95, restricted=restricted)
        terms = fixed.set_index("term")
        assert terms.loc["sd(trial)", "estimate"] == pytest.approx(fit.sds[1], rel=1e-9)
        assert terms.loc["model_margin", "se"] == pytest.approx(fit.beta_se[2], rel=1e-9)
    ml, _, _ = mixed.laplace_model(answers, 0.95)
    reml, _, _ = mixed.laplace_model(answers, 0.95, restricted=True)
    assert (
        reml.set_index("term").loc["sd(trial)", "estimate"]
        > ml.set_index("term").loc["sd(trial)", "estimate"]
    )
