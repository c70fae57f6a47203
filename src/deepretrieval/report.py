"""Human-readable evaluation output: a Markdown table and a PNG comparing policies."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .runs import atomic_path, family_stat, read_log, write_text_atomic

if TYPE_CHECKING:
    from matplotlib.axes import Axes

NON_METRIC_KEYS = {"policy", "collection", "split", "queries", "unjudged_queries"}
# A metric a policy's summary lacks is unknown, not zero: shown as this, and drawn as no bar.
MISSING = "—"


def metric_names(summaries: Mapping[str, Mapping]) -> list[str]:
    names: list[str] = []
    for summary in summaries.values():
        names += [k for k, v in summary.items() if k not in NON_METRIC_KEYS and _is_number(v)]
    return list(dict.fromkeys(names))


def markdown_table(summaries: Mapping[str, Mapping]) -> str:
    """One row per policy; "queries" are those averaged, "unjudged" those left out for having no judgment."""
    names = metric_names(summaries)
    header = "| policy | queries | unjudged (left out) | " + " | ".join(names) + " |"
    rule = "|---|---:|---:|" + "---:|" * len(names)
    rows = []
    for summary in summaries.values():
        cells = [_fmt(summary.get(k)) for k in ("queries", "unjudged_queries", *names)]
        rows.append(f"| {summary.get('policy', '?')} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])


def write_report(out_dir: Path, summaries: Mapping[str, Mapping]) -> None:
    """report.md and comparison.png, each replaced atomically: a kill leaves the old or the new one, whole.

    With no summary (no policy complete) both are removed: an old table or plot would show figures that no
    complete run vouches for."""
    if not summaries:
        for name in ("report.md", "comparison.png"):
            (out_dir / name).unlink(missing_ok=True)
        return
    first = next(iter(summaries.values()))
    title = f"# Evaluation: {first.get('collection', '?')}, split {first.get('split', '?')}\n\n"
    write_text_atomic(out_dir / "report.md", title + markdown_table(summaries) + "\n")
    with atomic_path(out_dir / "comparison.png") as tmp:
        plot_comparison(summaries, tmp, title=title.strip("# \n"))


def plot_comparison(summaries: Mapping[str, Mapping], path: Path, *, title: str = "") -> None:
    """Grouped bars: one group per metric, one bar per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(metric_names(summaries)) + 2), 4))
    draw_comparison(ax, summaries)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_comparison(ax: Axes, summaries: Mapping[str, Mapping]) -> None:
    """The bars of ``plot_comparison`` on ``ax``; a policy without a metric gets no bar there (not a 0)."""
    names = metric_names(summaries)
    width = 0.8 / max(len(summaries), 1)
    for i, (slug, summary) in enumerate(summaries.items()):
        present = [(j, float(summary[n])) for j, n in enumerate(names) if _is_number(summary.get(n))]
        xs = [j + i * width for j, _ in present]
        ax.bar(xs, [v for _, v in present], width=width, label=str(summary.get("policy", slug)))
    ax.set_xticks([j + width * (len(summaries) - 1) / 2 for j in range(len(names))], names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.legend(fontsize="small")


def _is_number(value: object) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return MISSING if value is None else str(value)


def _logged(record: Mapping, key: str) -> float | None:
    """A log record's value of ``key``: a full key as it is (``completions/clipped_ratio``), a bare statistic
    (``metric``) under the family's prefix the reward adapter wrote it with (``runs.family_stat``)."""
    if "/" in key:
        return record.get(key)
    found = family_stat(record, key)
    return None if found is None else found[1]


def plot_training(log_path: Path, path: Path) -> None:
    """Reward (mean, with std band) and the family's reward metric per GRPO step, from train_log.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in read_log(log_path) if "reward" in r]
    steps = [r["step"] for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if records:
        reward = [r["reward"] for r in records]
        std = [r.get("reward_std", 0.0) for r in records]
        left.plot(steps, reward, label="reward (mean)")
        low = [m - s for m, s in zip(reward, std, strict=True)]
        high = [m + s for m, s in zip(reward, std, strict=True)]
        left.fill_between(steps, low, high, alpha=0.2)
        for stat, label in (
            ("metric", "reward metric"),
            ("format_error_ratio", "out of format"),
            ("completions/clipped_ratio", "cut at length cap"),
        ):
            # The reward adapter's values under their family's prefix (retrieval/, literature/, qa/), TRL's as named.
            found = [(r["step"], v) for r in records if (v := _logged(r, stat)) is not None]
            if found:
                right.plot([s for s, _ in found], [v for _, v in found], label=label)
    left.set_xlabel("step")
    left.set_title("GRPO reward")
    left.legend(fontsize="small")
    right.set_xlabel("step")
    right.set_title("retrieval metric; share of completions")
    right.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning_curve(log_path: Path, path: Path, chosen: int | None = None) -> None:
    """Training reward and the held-out (``dev/``) measures against GRPO steps and against minutes, from
    train_log.jsonl; ``chosen``: the step ``RUN/final`` holds, marked. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    dev = list(dict.fromkeys(k for r in records for k in r if k.startswith("dev/")))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, x in zip(axes, ("step", "minutes"), strict=True):
        train = [(r[x], r["reward"]) for r in records if "reward" in r and x in r]
        if train:  # on an axis of its own: a reward's scale (DeepRetrieval's -4 .. +6) is not a measure's
            right = ax.twinx()
            right.plot([a for a, _ in train], [b for _, b in train], color="0.75", lw=0.8, label="train reward (mean)")
            right.set_ylabel("train reward", color="0.5")
            right.legend(fontsize="small", loc="upper right")
            ax.set_zorder(right.get_zorder() + 1)
            ax.patch.set_visible(False)
        ax.set_ylabel("held-out measure")
        for i, key in enumerate(dev):
            points = [(r[x], r[key]) for r in records if key in r and x in r]
            ax.plot([a for a, _ in points], [b for _, b in points], marker="o", lw=2 if i == 0 else 1, label=key)
            if i == 0 and chosen is not None:
                picked = [(r[x], r[key]) for r in records if key in r and x in r and r["step"] == chosen]
                if picked:
                    ax.scatter(*picked[0], s=140, facecolors="none", edgecolors="red", zorder=3, label="final")
        ax.set_xlabel("GRPO step" if x == "step" else "minutes")
        ax.legend(fontsize="small", loc="upper left")
    axes[0].set_title("learning curve")
    axes[1].set_title("against wall-clock time")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
