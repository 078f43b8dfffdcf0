"""Step 5, gather feedback and re-optimize: what reps say, what the data say, and realignment inputs.

Comment themes come from per-language keyword lexicons and a naive Bayes model of labelled example
comments, both shipped in ``territory_lib/lexicons/`` (no download at run time); survey scores carry
a t interval of the mean and are flagged only with enough responses.
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy import stats

from territory_lib.config import ResourceSettings
from territory_lib.errors import ConfigError
from territory_lib.io import SCORE_PREFIX
from territory_lib.presentation import chart_text, distance
from territory_lib.resources import visits_per_year

#: A mean score at or below this counts as poor in a proposed move's reason (scores run 1 to 5).
CONCERN_SCORE = 2.5
#: The middle of the 1-5 scale: a question is flagged when its whole interval lies below it.
NEUTRAL_SCORE = 3.0
#: The theme of a comment that names none of the themes, or says all is well.
OTHER = "other"
#: The languages with a shipped lexicon, ``territory_lib/lexicons/<language>.yaml``.
LANGUAGES = ("en", "ja")
# Hiragana, katakana (full and half width) and CJK ideographs: a comment with any is Japanese.
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")

#: Params form of a theme's keywords: a list (weight 1 each) or ``{keyword: weight}``.
ThemeKeywords = Sequence[str] | Mapping[str, float]


@dataclass(frozen=True)
class Lexicon:
    """One language's keywords with their weights per theme, and the phrases that say all is well."""

    language: str
    themes: dict[str, dict[str, float]]
    all_clear: dict[str, float]


def detect_language(text: str) -> str:
    """``"ja"`` for a comment with any kana or kanji, else ``"en"`` (the script decides, no model)."""
    return "ja" if _JAPANESE.search(text) else "en"


@functools.cache
def shipped_lexicon(language: str) -> Lexicon:
    """The lexicon shipped in the package for ``language`` (one of :data:`LANGUAGES`)."""
    if language not in LANGUAGES:
        raise ConfigError(f"No comment lexicon for language {language!r}; shipped: {', '.join(LANGUAGES)}.")
    source = importlib.resources.files("territory_lib").joinpath("lexicons", f"{language}.yaml")
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    themes = {name: {str(k): float(w) for k, w in words.items()} for name, words in raw["themes"].items()}
    return Lexicon(language, themes, {str(k): float(w) for k, w in raw["all_clear"].items()})


def lexicons(themes: Mapping[str, ThemeKeywords] | None = None) -> dict[str, Lexicon]:
    """The lexicon per language: the shipped ones, or ``themes`` (params ``feedback: themes:``) instead.

    Themes from params replace the shipped themes in every language: their keywords, in any language,
    are matched in each comment by the rule of the comment's language. The shipped all-clear phrases
    stay, so "no issues" still reads as :data:`OTHER`.
    """
    if themes is None:
        return {language: shipped_lexicon(language) for language in LANGUAGES}
    keywords = {
        name: dict.fromkeys(words, 1.0) if not isinstance(words, Mapping) else dict(words)
        for name, words in themes.items()
    }
    return {
        language: Lexicon(language, keywords, shipped_lexicon(language).all_clear) for language in LANGUAGES
    }


def _normalise(text: str) -> str:
    # NFKC folds full-width letters and digits (ＣＲＭ, ３０件) into their plain forms.
    return unicodedata.normalize("NFKC", text).casefold()


@functools.cache
def _keyword_pattern(keyword: str, language: str) -> re.Pattern[str]:
    """Japanese: the keyword anywhere. English: its words in order, each the start of a word (a stem).

    A word of up to three letters matches only itself or its plural, so "car" misses "carry".
    """
    text = _normalise(keyword)
    if language == "ja":
        return re.compile(re.escape(text))
    words = [re.escape(word) + (r"s?\b" if len(word) <= 3 else r"\w*") for word in re.findall(r"\w+", text)]
    return re.compile(r"\b" + r"\W+".join(words))


def theme_scores(comment: str, lexicon: Lexicon) -> dict[str, tuple[float, int]]:
    """Per theme (and :data:`OTHER` for all-clear phrases) its total weight and first position.

    Every stretch of the comment counts once: where keywords overlap, the longest wins, so
    "qualified prospects" counts as that phrase and not again as "prospects".
    """
    text = _normalise(comment)
    hits = [
        (match.start(), match.end(), weight, theme)
        for theme, words in {**lexicon.themes, OTHER: lexicon.all_clear}.items()
        for keyword, weight in words.items()
        for match in _keyword_pattern(keyword, lexicon.language).finditer(text)
        if match.end() > match.start()
    ]
    hits.sort(key=lambda hit: (hit[0] - hit[1], -hit[2], hit[0], hit[3]))
    taken = np.zeros(len(text), dtype=bool)
    scores: dict[str, tuple[float, int]] = {}
    for start, end, weight, theme in hits:
        if taken[start:end].any():
            continue
        taken[start:end] = True
        total, first = scores.get(theme, (0.0, start))
        scores[theme] = (total + weight, min(first, start))
    return scores


@dataclass(frozen=True)
class ExampleModel:
    """A naive Bayes model of one language's labelled example comments (log probabilities)."""

    language: str
    log_prior: dict[str, float]
    log_likelihood: dict[str, dict[str, float]]
    log_unseen: dict[str, float]

    def scores(self, comment: str) -> dict[str, float]:
        """Per theme, the log probability of the theme and the comment's words (or characters)."""
        features = _features(comment, self.language)
        return {
            theme: prior
            + sum(self.log_likelihood[theme].get(feature, self.log_unseen[theme]) for feature in features)
            for theme, prior in self.log_prior.items()
        }


def _features(text: str, language: str) -> list[str]:
    """Japanese: characters, their pairs and triples. English: 5-letter word stems and stem pairs."""
    normal = _normalise(text)
    if language == "ja":
        chars = re.sub(r"\s+", "", normal)
        return [chars[i : i + n] for n in (1, 2, 3) for i in range(len(chars) - n + 1)]
    stems = [word[:5] for word in re.findall(r"[a-z]+", normal)]
    return stems + [f"{first} {second}" for first, second in itertools.pairwise(stems)]


def fit_examples(examples: pd.DataFrame, smoothing: float = 0.5) -> dict[str, ExampleModel]:
    """Multinomial naive Bayes per language on labelled comments (``comment, language, theme``).

    ``smoothing`` is the additive (Lidstone) count given to every feature in every theme.
    """
    models = {}
    for language, part in examples.groupby("language"):
        counts: dict[str, Counter[str]] = {theme: Counter() for theme in sorted(set(part["theme"]))}
        for comment, theme in zip(part["comment"], part["theme"], strict=True):
            counts[theme].update(_features(comment, str(language)))
        vocabulary = len(set().union(*counts.values()))
        totals = {theme: sum(found.values()) + smoothing * vocabulary for theme, found in counts.items()}
        share = part["theme"].value_counts(normalize=True)
        models[str(language)] = ExampleModel(
            str(language),
            {theme: float(np.log(share[theme])) for theme in counts},
            {
                theme: {key: float(np.log((n + smoothing) / totals[theme])) for key, n in found.items()}
                for theme, found in counts.items()
            },
            {theme: float(np.log(smoothing / totals[theme])) for theme in counts},
        )
    return models


@functools.cache
def shipped_examples() -> dict[str, ExampleModel]:
    """The naive Bayes models of the labelled example comments shipped in ``lexicons/examples.csv``."""
    source = importlib.resources.files("territory_lib").joinpath("lexicons", "examples.csv")
    with source.open("r", encoding="utf-8") as handle:
        examples = pd.read_csv(handle, keep_default_na=False)
    return fit_examples(examples)


def primary_theme(
    comment: str,
    lexicons_by_language: Mapping[str, Lexicon] | None = None,
    models: Mapping[str, ExampleModel] | None = None,
) -> str:
    """The one theme a comment is mainly about, or :data:`OTHER`.

    Each theme scores its total keyword weight (all-clear phrases score for :data:`OTHER`). With
    ``models`` (the shipped themes' :func:`shipped_examples`), the example model's log probability
    is added, so comments worded unlike any keyword still find their theme; without, a comment with
    no keyword is :data:`OTHER`, and so is one whose all-clear phrases weigh as much as its best
    theme ("travel and workload are fine"). A tie goes to the theme mentioned first, then the one
    listed first.
    """
    table = lexicons_by_language if lexicons_by_language is not None else lexicons()
    language = detect_language(comment)
    lexicon = table[language]
    found = theme_scores(comment, lexicon)
    order = {name: rank for rank, name in enumerate([*lexicon.themes, OTHER])}
    model = models.get(language) if models is not None else None
    if model is not None:
        total = model.scores(comment)
        for theme, (weight, _) in found.items():
            total[theme] = total.get(theme, 0.0) + weight
        first = {theme: found.get(theme, (0.0, len(comment)))[1] for theme in total}
        return min(total, key=lambda theme: (-total[theme], first[theme], order.get(theme, len(order))))
    ranked = sorted(
        (theme for theme in found if theme != OTHER),
        key=lambda theme: (-found[theme][0], found[theme][1], order[theme]),
    )
    if not ranked or found.get(OTHER, (0.0, 0))[0] >= found[ranked[0]][0]:
        return OTHER
    return ranked[0]


def theme_names(themes: Mapping[str, ThemeKeywords] | None = None) -> list[str]:
    """The themes in their listed order, then :data:`OTHER`."""
    return [*lexicons(themes)["en"].themes, OTHER]


def classify(
    comments: Sequence[str] | pd.Series, themes: Mapping[str, ThemeKeywords] | None = None
) -> list[str]:
    """The primary theme of each comment (see :func:`primary_theme`).

    The shipped themes use the shipped lexicons and example models; themes from params use their
    keywords alone (the examples are labelled with the shipped themes).
    """
    table = lexicons(themes)
    models = shipped_examples() if themes is None else None
    return [primary_theme(str(comment), table, models) for comment in comments]


def comment_themes(feedback: pd.DataFrame, themes: Mapping[str, ThemeKeywords] | None = None) -> pd.DataFrame:
    """One row per non-empty comment, newest first: ``date, rep_id, comment, theme``."""
    if "comment" not in feedback:
        return pd.DataFrame(columns=["date", "rep_id", "comment", "theme"])
    text = feedback["comment"].fillna("").astype(str).str.strip()
    frame = feedback.loc[text != "", ["date", "rep_id"]].assign(comment=text[text != ""])
    frame["theme"] = classify(frame["comment"], themes)
    return frame.sort_values(["date", "rep_id"], ascending=[False, True]).reset_index(drop=True)


def theme_counts(table: pd.DataFrame, names: Sequence[str]) -> dict[str, int]:
    """Comments per theme of :func:`comment_themes`, every theme in ``names`` present (0 when unused)."""
    counts = table["theme"].value_counts()
    return {name: int(counts.get(name, 0)) for name in names}


def theme_examples(table: pd.DataFrame, theme: str, limit: int = 3) -> pd.DataFrame:
    """The latest comments of :func:`comment_themes` whose primary theme is ``theme``."""
    hits = table[table["theme"] == theme]
    return hits.sort_values(["date", "rep_id"], ascending=[False, True]).head(limit)[
        ["date", "rep_id", "comment"]
    ]


def classification_scores(truth: Sequence[str], predicted: Sequence[str]) -> pd.DataFrame:
    """Per theme: comments labelled, precision, recall and F1; a last row ``macro`` averages them.

    A theme never predicted has precision 0 (not undefined), so a classifier cannot score by silence.
    """
    frame = pd.DataFrame({"truth": list(truth), "predicted": list(predicted)})
    rows = {}
    for theme in sorted(set(frame["truth"]) | set(frame["predicted"])):
        hit = ((frame["truth"] == theme) & (frame["predicted"] == theme)).sum()
        claimed, actual = (frame["predicted"] == theme).sum(), (frame["truth"] == theme).sum()
        precision = hit / claimed if claimed else 0.0
        recall = hit / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows[theme] = {"labelled": int(actual), "precision": precision, "recall": recall, "f1": f1}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.loc["macro"] = [len(frame), table["precision"].mean(), table["recall"].mean(), table["f1"].mean()]
    return table


def score_summary(
    feedback: pd.DataFrame,
    reps: pd.DataFrame,
    score_columns: Sequence[str],
    recent_quarters: int = 4,
    level: float = 0.90,
) -> pd.DataFrame:
    """Mean scores per rep over the last ``recent_quarters`` quarters, their interval and change.

    For each question ``q``: ``q`` (the mean), ``q_low`` and ``q_high`` (a t interval of the mean at
    ``level``, clipped to the 1-5 scale; empty with fewer than two answers), ``q_responses`` and
    ``q_change`` (against the same number of quarters before, where there are any). Reps answer
    about the territory they work today, so the scores describe today's alignment.
    """
    frame = feedback.assign(quarter=feedback["date"].dt.to_period("Q"))
    last = frame["quarter"].max()
    recent = frame[frame["quarter"] > last - recent_quarters]
    before = frame[
        (frame["quarter"] <= last - recent_quarters) & (frame["quarter"] > last - 2 * recent_quarters)
    ]
    columns = list(score_columns)
    grouped = recent.groupby("rep_id")[columns]
    mean, count, spread = grouped.mean(), grouped.count(), grouped.std()
    half = spread / np.sqrt(count) * stats.t.ppf(0.5 + level / 2, (count - 1).where(count > 1))
    change = mean - before.groupby("rep_id")[columns].mean()
    summary = pd.DataFrame(index=mean.index)
    summary.insert(0, "rep_name", summary.index.map(reps.set_index("rep_id")["name"]))
    summary["responses"] = recent.groupby("rep_id").size()
    for column in columns:
        name = column.removeprefix(SCORE_PREFIX)
        summary[name] = mean[column]
        summary[f"{name}_low"] = (mean[column] - half[column]).clip(1, 5)
        summary[f"{name}_high"] = (mean[column] + half[column]).clip(1, 5)
        summary[f"{name}_responses"] = count[column]
        summary[f"{name}_change"] = change[column]
    return summary.reset_index()


def question_names(scores: pd.DataFrame) -> list[str]:
    """The survey questions of a :func:`score_summary` (``workload``, ``travel``, ...)."""
    return [name.removesuffix("_responses") for name in scores.columns if name.endswith("_responses")]


def survey_flags(
    scores: pd.DataFrame, min_responses: int = 5, neutral: float = NEUTRAL_SCORE
) -> pd.DataFrame:
    """The rep and question pairs scored poorly beyond the scatter of the answers.

    A pair is flagged when it has at least ``min_responses`` answers and its whole interval lies
    below ``neutral`` (the middle of the scale). Columns: rep_id, rep_name, question, mean, low,
    high, responses.
    """
    rows = [
        {
            "rep_id": row["rep_id"],
            "rep_name": row["rep_name"],
            "question": name,
            "mean": row[name],
            "low": row[f"{name}_low"],
            "high": row[f"{name}_high"],
            "responses": int(row[f"{name}_responses"]),
        }
        for _, row in scores.iterrows()
        for name in question_names(scores)
        if row[f"{name}_responses"] >= min_responses and row[f"{name}_high"] < neutral
    ]
    return pd.DataFrame(rows, columns=["rep_id", "rep_name", "question", "mean", "low", "high", "responses"])


def findings(
    scores: pd.DataFrame,
    comparison: pd.DataFrame,
    min_responses: int = 5,
    level: float = 0.90,
    neutral: float = NEUTRAL_SCORE,
    distance_unit: str = "km",
) -> list[str]:
    """Plain-language findings: each flagged score beside what the data say today and in the plan.

    Flags follow :func:`survey_flags`; a last line says how many flags chance alone would give if
    every rep's true score were neutral, and how many pairs have too few answers to flag.
    ``comparison`` is :func:`territory_lib.resources.workload_before_after`; driving is shown in
    ``distance_unit`` (``"km"`` or ``"mi"``).
    """
    evidence = {
        "workload": ("utilisation", lambda value: f"{value:.0%} of capacity"),
        "travel": ("annual_drive_km", lambda km: f"{distance(km, distance_unit)} of driving a year"),
    }
    load = comparison.set_index("rep_id")
    notes = []
    for flag in survey_flags(scores, min_responses, neutral).itertuples(index=False):
        line = (
            f"{flag.rep_name} ({flag.rep_id}) rates {flag.question} {flag.mean:.1f}/5 "
            f"({level:.0%} interval {flag.low:.1f}-{flag.high:.1f}, {flag.responses} answers)"
        )
        if flag.question in evidence and flag.rep_id in load.index:
            column, pattern = evidence[flag.question]
            today, plan = load.at[flag.rep_id, f"{column}_today"], load.at[flag.rep_id, f"{column}_plan"]
            if pd.notna(today) and pd.notna(plan):
                line += f": today {pattern(today)}, in the plan {pattern(plan)}"
        notes.append(line + ".")
    if not notes:
        notes.append(f"No rep scores any question clearly below {neutral:g} out of 5.")
    names = question_names(scores)
    counts = scores[[f"{name}_responses" for name in names]].to_numpy() if len(scores) else np.empty((0, 0))
    eligible, pairs = int((counts >= min_responses).sum()), counts.size
    chance = (1 - level) / 2 * eligible
    notes.append(
        f"{eligible} of {pairs} rep and question pairs have at least {min_responses} answers and can be "
        f"flagged; if every rep's true score were {neutral:g}, chance alone would flag about {chance:.1f}."
    )
    return notes


def score_table(scores: pd.DataFrame) -> pd.DataFrame:
    """A :func:`score_summary` for reading: per question "mean (low-high)" and the change."""
    table = scores[["rep_id", "rep_name", "responses"]].copy()
    for name in question_names(scores):
        table[name] = [
            f"{mean:.1f} ({low:.1f}-{high:.1f})"
            if pd.notna(low)
            else (f"{mean:.1f}" if pd.notna(mean) else "")
            for mean, low, high in zip(
                scores[name], scores[f"{name}_low"], scores[f"{name}_high"], strict=True
            )
        ]
        table[f"{name}_change"] = scores[f"{name}_change"]
    return table


def theme_summary(table: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Per theme of :func:`comment_themes`: comments, their share and the latest one, most raised first.

    :data:`OTHER` comes last whatever its count: it is what no theme names.
    """
    counts = theme_counts(table, names)
    total = max(len(table), 1)
    rows = [
        {
            "theme": name,
            "comments": counts[name],
            "share": counts[name] / total,
            "latest": next(iter(theme_examples(table, name, 1)["comment"]), ""),
        }
        for name in names
    ]
    summary = pd.DataFrame(rows, columns=["theme", "comments", "share", "latest"])
    order = summary.assign(last=summary["theme"] == OTHER).sort_values(
        ["last", "comments"], ascending=[True, False], kind="stable"
    )
    return order.drop(columns="last").reset_index(drop=True)


def survey_heatmap_alt(matrix: pd.DataFrame, marked: set[tuple[str, str]]) -> str:
    """What :func:`survey_heatmap` shows, in words (the image's alt text)."""
    low = [f"{row} on {question}" for row, question in sorted(marked)]
    return (
        f"Heatmap of mean survey scores (1 poor to 5 good), {len(matrix)} territories by "
        f"{len(matrix.columns)} questions, each cell labelled with its score. "
        + (f"Flagged low: {'; '.join(low)}." if low else "No score is flagged low.")
    )


def survey_matrix(scores: pd.DataFrame, territory_of: Mapping[str, str]) -> pd.DataFrame:
    """Mean scores with one row per territory (``"T01 · rep name"``) and one column per question."""
    names = question_names(scores)
    labels = [
        f"{territory_of.get(rep, '?')} · {name}"
        for rep, name in zip(scores["rep_id"], scores["rep_name"], strict=True)
    ]
    matrix = pd.DataFrame(scores[names].to_numpy(dtype=float), index=labels, columns=names)
    return matrix.sort_index()


def survey_heatmap(matrix: pd.DataFrame, flagged: set[tuple[str, str]] | None = None) -> Figure:
    """A heatmap of mean scores (territory × question) with each score printed in its cell.

    ``flagged`` holds (row label, question) pairs to outline: the scores :func:`survey_flags` names.
    """
    figure = Figure(figsize=(1.6 + 1.3 * len(matrix.columns), 0.9 + 0.32 * len(matrix)))
    axes = figure.add_subplot()
    image = axes.imshow(matrix.to_numpy(), cmap="RdYlGn", vmin=1, vmax=5, aspect="auto")
    axes.set_xticks(range(len(matrix.columns)), [chart_text(c).capitalize() for c in matrix.columns])
    axes.set_yticks(range(len(matrix)), [chart_text(label) for label in matrix.index])
    axes.xaxis.tick_top()
    for (row, column), value in np.ndenumerate(matrix.to_numpy()):
        if np.isfinite(value):
            # White on the darkest red and green, black elsewhere, so every number stays legible.
            colour = "white" if value < 1.8 or value > 4.6 else "black"
            axes.text(column, row, f"{value:.1f}", ha="center", va="center", fontsize=8, color=colour)
    for row, column in flagged or set():
        if row in matrix.index and column in matrix.columns:
            y, x = matrix.index.get_loc(row), matrix.columns.get_loc(column)
            axes.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, linewidth=2, edgecolor="black"))
    figure.colorbar(image, ax=axes, label="Mean score (1 poor to 5 good)", shrink=0.8)
    return figure


def unit_effort(accounts: pd.DataFrame, units: pd.DataFrame, settings: ResourceSettings) -> pd.Series:
    """Planned visits a year per unit (by the accounts' segments): the field effort a unit asks for."""
    visits = (
        accounts.assign(visits=visits_per_year(accounts["segment"], settings))
        .groupby("unit_id")["visits"]
        .sum()
    )
    return units["unit_id"].map(visits).fillna(0.0).rename("effort")


def capacity_shares(
    territory_ids: Sequence[str], rep_assignment: pd.DataFrame, reps: pd.DataFrame
) -> list[float] | None:
    """Target shares proportional to each territory's rep capacity; ``None`` when one has no rep."""
    capacity = rep_assignment.set_index("territory_id")["rep_id"].map(reps.set_index("rep_id")["capacity"])
    values = [float(capacity.get(territory, float("nan"))) for territory in territory_ids]
    if any(pd.isna(value) or value <= 0 for value in values):
        return None
    total = sum(values)
    return [value / total for value in values]


def target_deviations(
    units: pd.DataFrame,
    assignment: pd.Series,
    columns: Sequence[str],
    shares: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Each territory's relative deviation from its target for each measure (0.1 is 10 % over).

    ``assignment`` maps ``unit_id`` to territory; ``shares`` are the territories' target shares in
    sorted territory order (equal shares when ``None``), as :func:`capacity_shares` gives them.
    """
    labels = units["unit_id"].map(assignment)
    totals = units[list(columns)].groupby(labels.to_numpy()).sum().sort_index()
    share = pd.Series(
        shares if shares is not None else [1.0 / len(totals)] * len(totals), index=totals.index, dtype=float
    )
    expected = pd.DataFrame({c: share * float(units[c].sum()) for c in columns})
    return (totals / expected.where(expected > 0) - 1.0).fillna(0.0)


def moves_table(
    plan_moves: pd.DataFrame,
    alignment: pd.DataFrame,
    workload: pd.DataFrame,
    scores: pd.DataFrame,
    deviations: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The proposed moves with each unit's size and why the two territories trade it.

    ``workload`` is the plan's :func:`territory_lib.resources.rep_workload`; ``scores`` the
    :func:`score_summary` (may be empty); ``deviations`` the territories' deviations from target
    before the moves (:func:`target_deviations`), which name the measure a move balances.
    """
    units = alignment.set_index("unit_id")
    load = workload.set_index("territory_id")
    rated = scores.set_index("rep_id")["workload"] if "workload" in scores else pd.Series(dtype=float)
    table = plan_moves.copy()
    table["name"] = table["unit_id"].map(units["name"])
    table["accounts"] = table["unit_id"].map(units["accounts"])
    table["potential"] = table["unit_id"].map(units["potential"])
    table["reason"] = [
        _reason(source, target, load, rated, deviations)
        for source, target in zip(table["from_territory"], table["to_territory"], strict=True)
    ]
    return table[["unit_id", "name", "from_territory", "to_territory", "accounts", "potential", "reason"]]


def _reason(
    source: str, target: str, load: pd.DataFrame, rated: pd.Series, deviations: pd.DataFrame | None
) -> str:
    """Why ``source`` hands a unit to ``target``: the measure they differ most on, then the reps' side."""
    parts = []
    if deviations is not None and source in deviations.index and target in deviations.index:
        gap = deviations.loc[source] - deviations.loc[target]
        measure = str(gap.idxmax())
        parts.append(
            f"{measure}: {source} {deviations.at[source, measure]:+.0%} against its target, "
            f"{target} {deviations.at[target, measure]:+.0%}"
        )
    if source in load.index and target in load.index:
        busier = load.at[source, "utilisation"] > load.at[target, "utilisation"]
        if busier or not parts:
            parts.append(
                f"{source} runs at {load.at[source, 'utilisation']:.0%} of capacity, {target} at "
                f"{load.at[target, 'utilisation']:.0%}"
            )
        rep = load.at[source, "rep_id"]
        if rep in rated.index and pd.notna(rated[rep]) and rated[rep] <= CONCERN_SCORE:
            parts.append(f"{source}'s rep rates workload {rated[rep]:.1f}/5")
    return "; ".join(parts) or "restores balance"
