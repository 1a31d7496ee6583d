"""Rendering of benchmark results: results.json (full precision), results.csv, results.md.

results.json:
    {"systems": {NAME: {"input": "mixture"|"clean"|"separated", "description": ...,
                        "checkpoint_ids": [...],
                        "accuracy": {cond..., "mean"}, "ci95": {cond: [lo, hi]},
                        "n_triplets": {cond..., "mean"},        # primary kind (pseudo-mix)
                        "n_ties": {cond..., "mean"},     # of them, d(a,p) == d(a,n) exactly
                        "n_identical": {cond..., "mean"},  # ... with a, p, n the same vector
                        "tie_share": float,   # ties / triplets over all its kinds
                        "crossed_se": {cond..., "mean"},  # the crossed interval (results.csv):
                        "crossed_df": {cond..., "mean"},  #   se, its t df (Satterthwaite) and
                        "crossed_ci95": {cond: [lo, hi]},  #  bounds; null where the kind's
                                                           #  other pieces are unknown, df
                                                           #  and bounds null where se is
                                                           #  0 (see crossed_undefined)
                        "by_kind": {KIND: {"accuracy", "ci95", "n_triplets", "n_ties",
                                           "n_identical", "crossed_se", "crossed_df",
                                           "crossed_ci95"}}}},
     "primary_kind": "pseudo", "reference": "csn",
     "tie_rule": "...",   # TIE_RULE: a tie counts as wrong in the accuracy
     "warnings": ["system X: 100.0 % of triplets ... are ties ...", ...],   # tie_warnings
     "comparisons": [{kind, term, system, reference, estimate, stat, p_val, p_adj,
                      crossed_se, crossed_df, crossed_p_val, crossed_p_adj, n, n_pieces,
                      n_pieces_differing, iid_mcnemar_p_val, iid_mcnemar_p_adj,
                      n_discordant, b, c}, ...],   # csn_model.evaluation.compare_to_reference
     "separator_sdr": [{method, condition, mean, median, n}, ...],
     "config": {...}, "dataset": {...}, "triplets": {KIND: {path, sha256, n}}, "trained_on": ...,
     "code": {"csn_model": VERSION, "items": {system: int}, "batches": int, "sampler": int}}
                  # csn_model.bench_versions.code_versions: the code that scored (and, as
                  # csn bench refuses older parts, made) the systems; absent before 2026-12-06
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import pandas as pd

from csn_model import CONDITIONS
from csn_model.bench_config import DESCRIPTIONS, PROPOSED
from csn_model.bench_versions import code_versions
from csn_model.config import to_dict
from csn_model.evaluation import MEAN

TERMS = (*CONDITIONS, MEAN)
TIE_WARN_SHARE = 0.05  # more ties than this in a system's triplets gets a warning line
TIE_RULE = (
    "Accuracy counts a tie as wrong (a tie: d(anchor, positive) == d(anchor, negative) exactly), "
    "as in every earlier run, so accuracies stay comparable; 'ties' is the share of the "
    "system's triplets in the table that tie."
)

log = logging.getLogger("csn.bench")


def _input_of(name: str) -> str:
    return {"individual_clean": "clean", "individual_separated": "separated"}.get(name, "mixture")


def _ids(net) -> list[str]:
    return [n.id for n in net.values()] if isinstance(net, dict) else [net.id]


def _kind_block(acc: pd.DataFrame) -> dict:
    by_term = acc.set_index("term")
    terms = [t for t in TERMS if t in by_term.index]
    return {
        "accuracy": {t: float(by_term.loc[t, "estimate"]) for t in terms},
        "ci95": {
            t: [float(by_term.loc[t, "ci_low"]), float(by_term.loc[t, "ci_high"])] for t in terms
        },
        "n_triplets": {t: int(by_term.loc[t, "n"]) for t in terms},
        **{
            column: {t: int(by_term.loc[t, column]) for t in terms}
            for column in ("n_ties", "n_identical")
            if column in by_term.columns
        },
        **_crossed_block(by_term, terms),
    }


def _crossed_block(by_term: pd.DataFrame, terms: list[str]) -> dict:
    """results.csv's crossed interval per term (crossed_accuracy), None for NaN (a kind whose
    other pieces are unknown; df and bounds where crossed_se is 0, crossed_undefined); empty for
    a table without them."""
    if "crossed_se" not in by_term.columns:
        return {}
    se, df, low, high = (
        {t: _number(by_term.loc[t, column]) for t in terms}
        for column in ("crossed_se", "crossed_df", "crossed_ci_low", "crossed_ci_high")
    )
    return {
        "crossed_se": se,
        "crossed_df": df,
        "crossed_ci95": {t: [low[t], high[t]] for t in terms},
    }


def _number(v) -> float | None:
    return None if pd.isna(v) else float(v)


def crossed_undefined(row) -> str | None:
    """Why a comparisons.csv or results.csv row's crossed statistics are not all defined, in
    words (they are NaN there, null in results.json); None where they are. `row`: a mapping
    with crossed_se, and crossed_p_val for a comparison."""
    se, comparison = row["crossed_se"], "crossed_p_val" in row
    if pd.isna(se):
        return (
            "crossed statistics not computed: the outcomes lack each triplet's other pieces "
            "(`others`; runs made before it, see bench_stats --triplets)"
        )
    if se > 0:
        return None
    if not comparison:
        return (
            "crossed variance estimate 0: interval undefined; see the bootstrap interval "
            "(crossed df undefined too, Satterthwaite's 0 / 0)"
        )
    if pd.isna(row["crossed_p_val"]):
        return (
            "crossed p undefined: the crossed variance estimate is 0 (truncated), so the test "
            "is undefined; read the sign-flip p_val (the test over pieces, always defined). "
            "Its crossed_p_adj is undefined too; counted in its Holm family as p = 1"
        )
    return (
        "crossed df undefined: the crossed variance estimate is 0 (truncated), so "
        "Satterthwaite's df is 0 / 0; crossed p = 1, as the summed difference is 0"
    )


def crossed_p_text(row, df_label: str = "df ") -> str:
    """A comparison's crossed p_adj and df for text: "0.012 (df 7.1)", "undefined" for NaN."""
    p, df = row["crossed_p_adj"], row["crossed_df"]
    return ("undefined" if pd.isna(p) else f"{p:.3g}") + (
        f" ({df_label}undefined)" if pd.isna(df) else f" ({df_label}{df:.1f})"
    )


def crossed_notes(acc: pd.DataFrame, comps: pd.DataFrame) -> list[str]:
    """One line per results.csv / comparisons.csv row whose crossed statistics are undefined
    (crossed_undefined), naming the row; a kind whose other pieces are unknown gets one line."""
    lines, unknown = [], set()
    for name, table in (("accuracy", acc), ("comparison", comps)):
        if "crossed_se" not in table.columns:
            continue
        for rec in table.to_dict(orient="records"):
            reason = crossed_undefined(rec)
            if reason is None:
                continue
            if pd.isna(rec["crossed_se"]):
                unknown.add(rec["kind"])
                continue
            who = rec["system"] if name == "accuracy" else f"{rec['reference']} - {rec['system']}"
            lines.append(f"{name} {who}, {rec['kind']} {rec['term']}: {reason}")
    lines += [f"{kind}: {crossed_undefined({'crossed_se': None})}" for kind in sorted(unknown)]
    return lines


def tie_warnings(acc: pd.DataFrame) -> list[str]:
    """One line per system whose ties pass TIE_WARN_SHARE of its triplets (all kinds), naming
    one whose every triplet has anchor, positive and negative embedded to the same vector.
    `acc`: rows with system, term, n, n_ties, n_identical (accuracy_table or tie_table)."""
    if "n_ties" not in acc.columns:
        return []
    totals = acc[acc.term == MEAN].groupby("system", sort=False)[["n", "n_ties", "n_identical"]]
    lines = []
    for system, row in totals.sum().iterrows():
        n, ties = int(row["n"]), int(row["n_ties"])
        if not n or ties / n <= TIE_WARN_SHARE:
            continue
        line = f"system {system}: {100 * ties / n:.1f} % of triplets ({ties} of {n}) are ties"
        if int(row["n_identical"]) == n:
            line += (
                ", each with anchor, positive and negative embedded to the same vector: its "
                "embedding is constant on these inputs (collapsed training?)"
            )
        else:
            line += ": its embedding is (nearly) constant (collapsed training?)"
        lines.append(line + "; its accuracy counts them as wrong")
    return lines


def tie_shares(acc: pd.DataFrame) -> dict[str, float]:
    """{system: ties / triplets over all its kinds}; empty without n_ties (older outcomes)."""
    if "n_ties" not in acc.columns:
        return {}
    totals = acc[acc.term == MEAN].groupby("system", sort=False)[["n", "n_ties"]].sum()
    return {str(s): float(r["n_ties"] / r["n"]) for s, r in totals.iterrows() if r["n"]}


def dataset_info(ds) -> dict:
    info = {
        "root": str(Path(ds.root).resolve()),
        "name": Path(ds.root).resolve().name,
        "sample_rate": ds.sample_rate,
        "tracks": {s: len(ds.tracks(s)) for s in ds.splits},
        "fingerprint": ds.fingerprint,  # csn_model.data.fingerprint
        "skipped_stems": ds.skip_summary("test"),  # the tracks analysed here (the test split)
    }
    manifest = Path(ds.root) / "csn_synth.json"  # written by `csn synth`: seed, soundfont, ...
    if manifest.exists():
        info["synth"] = json.loads(manifest.read_text())
    return info


def build_results(cfg, ds, triplets, nets, acc, comps, sdr, trained_on="") -> dict:
    kinds = list(triplets)
    primary = "pseudo" if "pseudo" in kinds else kinds[0]
    systems = {}
    for name, net in nets.items():
        blocks = {k: _kind_block(acc[(acc.system == name) & (acc.kind == k)]) for k in kinds}
        systems[name] = {
            "input": _input_of(name),
            "description": DESCRIPTIONS.get(name, name),
            "checkpoint_ids": _ids(net),
            **blocks[primary],
            "tie_share": tie_shares(acc).get(name),
            "by_kind": blocks,
        }
    return {
        "systems": systems,
        "primary_kind": primary,
        "reference": PROPOSED if PROPOSED in nets else next(iter(nets)),
        "tie_rule": TIE_RULE,
        "warnings": tie_warnings(acc),
        "comparisons": _records(comps),
        "separator_sdr": sdr,
        "config": to_dict(cfg),
        "dataset": dataset_info(ds),
        "triplets": {
            k: {
                "path": str(p),
                "n": len(t),
                "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16],
            }
            for k, (t, p) in triplets.items()
        },
        "trained_on": trained_on,
        "code": code_versions(),  # tells results of this code from those of older code
    }


def _records(df: pd.DataFrame) -> list[dict]:
    out = []
    for rec in df.to_dict(orient="records"):
        out.append(
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
        )
    return out


def write_results(results: dict, acc: pd.DataFrame, comps: pd.DataFrame, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=_plain))
    table = acc.copy()
    table.insert(1, "input", table["system"].map(_input_of))
    table.to_csv(out_dir / "results.csv", index=False)
    comps.to_csv(out_dir / "comparisons.csv", index=False)
    (out_dir / "results.md").write_text(render_markdown(results, acc, comps))
    shares = tie_shares(acc)  # `csn bench` logs to stdout: these come with its summary
    if shares:
        listed = ", ".join(f"{s} {100 * v:.1f} %" for s, v in shares.items())
        log.info("tied triplets (counted wrong): %s", listed)
    for line in results.get("warnings", []):
        log.warning("%s", line)


def _plain(v):
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"not JSON-serialisable: {type(v)}")


def render_markdown(results: dict, acc: pd.DataFrame, comps: pd.DataFrame) -> str:
    ds = results["dataset"]
    lines = [f"# Triplet accuracy on {ds['name']} (test split)", ""]
    synth = ds.get("synth", {})
    if synth:
        cfg = synth.get("config", synth)
        lines += [
            f"Dataset: `{ds['root']}`, {ds['tracks']}, sample rate {ds['sample_rate']}; "
            f"synth seed {cfg.get('seed')}, soundfont `{cfg.get('soundfont')}`.",
            "",
        ]
    if results.get("trained_on"):
        lines += [f"Systems trained in `{results['trained_on']}` (no retraining).", ""]
    code = results.get("code")
    if code:
        items = ", ".join(f"{k} {v}" for k, v in code["items"].items())
        lines += [
            f"Code: csn_model {code['csn_model']} (items {items}; separator batches "
            f"{code['batches']}; triplet sampler {code['sampler']}).",
            "",
        ]
    lines += [f"**Warning:** {line}" for line in results.get("warnings", [])]
    if results.get("warnings"):
        lines.append("")
    for kind in acc["kind"].unique():
        lines += [_accuracy_md(results, acc[acc.kind == kind], kind), ""]
    if len(comps):
        lines += [_comparisons_md(comps, results["reference"]), ""]
    notes = crossed_notes(acc, comps)
    if notes:
        lines += ["## Crossed statistics left undefined (NaN in the CSVs, null in results.json)"]
        lines += ["", *(f"- {n}" for n in notes), ""]
    if results.get("separator_sdr"):
        lines += [_sdr_md(results["separator_sdr"]), ""]
    return "\n".join(lines)


def _accuracy_md(results, acc: pd.DataFrame, kind: str) -> str:
    label = {"pseudo": "pseudo-mixed", "natural": "natural"}.get(kind, kind)
    ties = "n_ties" in acc.columns
    head = f"## Accuracy, {label} triplets (95% CI, bootstrap over pieces)\n\n"
    head += TIE_RULE if ties else "Accuracy counts a tie as wrong; ties were not recorded."
    head += "\n\n| system | input | " + " | ".join(TERMS) + (" | ties |\n" if ties else " |\n")
    head += "|---|---|" + "---|" * (len(TERMS) + ties) + "\n"
    rows, n_row = [], None
    for name in results["systems"]:
        part = acc[acc.system == name].set_index("term")
        cells = [
            f"{part.loc[t, 'estimate']:.3f} [{part.loc[t, 'ci_low']:.2f}, "
            f"{part.loc[t, 'ci_high']:.2f}]"
            if t in part.index
            else "-"
            for t in TERMS
        ]
        if ties:
            share = part.loc[MEAN, "n_ties"] / part.loc[MEAN, "n"] if MEAN in part.index else None
            cells.append("-" if share is None else f"{100 * share:.1f} %")
        rows.append(f"| {name} | {_input_of(name)} | " + " | ".join(cells) + " |")
        n_row = n_row or [str(int(part.loc[t, "n"])) if t in part.index else "-" for t in TERMS]
    rows.append("| n triplets | | " + " | ".join(n_row or []) + (" | |" if ties else " |"))
    return head + "\n".join(rows)


def _comparisons_md(comps: pd.DataFrame, reference: str) -> str:
    out = [
        f"## Paired test over pieces: {reference} vs each system (Holm-adjusted p per term)",
        "",
        "Exact sign-flip test of the per-piece differences (a piece's triplets move together). "
        "It allows for the anchor piece only; comparisons.csv's crossed_p_val / _adj also allow "
        "for the pieces B, C, D a triplet shares with others (csn_model.piece_variance; "
        "experiments/README.md, Statistics). comparisons.csv also has iid_mcnemar_p_val / _adj, "
        "an exact McNemar that counts triplets as independent: descriptive only, too small when "
        "pieces cluster.",
        "",
    ]
    for kind in comps["kind"].unique():
        part = comps[comps.kind == kind]
        out += [
            f"**{kind}** (cell: accuracy difference {reference} - other, adjusted p)",
            "",
            "| system | " + " | ".join(TERMS) + " |",
            "|---|" + "---|" * len(TERMS),
        ]
        for system in part["system"].unique():
            rows = part[part.system == system].set_index("term")
            cells = [
                f"{rows.loc[t, 'estimate']:+.3f} (p={rows.loc[t, 'p_adj']:.3g})"
                if t in rows.index
                else "-"
                for t in TERMS
            ]
            out.append(f"| {system} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _sdr_md(sdr: list[dict]) -> str:
    out = [
        "## Separator SDR on the test split (dB, mean over tracks; median in brackets)",
        "",
        "| method | " + " | ".join(CONDITIONS) + " |",
        "|---|" + "---|" * len(CONDITIONS),
    ]
    for method in dict.fromkeys(r["method"] for r in sdr):
        by = {r["condition"]: r for r in sdr if r["method"] == method}
        cells = [
            f"{by[c]['mean']:.2f} ({by[c]['median']:.2f}), n={by[c]['n']}" if c in by else "-"
            for c in CONDITIONS
        ]
        out.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(out)
