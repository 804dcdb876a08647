"""Report outputs: ``report.json``, a self-contained ``report.html`` and a terminal table.

The HTML page has no scripts and loads nothing: CSS and SVG charts are inline and generated
here. Every piece of chat content (group names, member names, message text, topic keywords)
goes through :func:`html.escape`, so a message like ``<script>`` shows as text.

>>> html_text = render_html(report)              # doctest: +SKIP
>>> Console().print(summary_table(report))       # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Sequence

import orjson
from rich import box
from rich.table import Table

from .base import GroupscoreError

LABEL_COLOURS = {"ad": "#d64545", "question": "#e8a33d", "on_topic": "#2f8f5b", "off_topic": "#9aa5b1"}
LABEL_NAMES = {"ad": "广告 ad", "question": "提问 question", "on_topic": "话题讨论 on_topic", "off_topic": "闲聊 off_topic"}
STRATA = [
    ("core", "核心贡献者 core", "#1f6f43"),
    ("active", "活跃 active", "#4fae7b"),
    ("chatter_only", "只闲聊 chatter only", "#9aa5b1"),
    ("ad_only", "只发广告 ads only", "#d64545"),
    ("silent", "潜水 silent", "#d5dae0"),
]
UNANSWERED_HTML = 20
FONT_STACK = '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "PingFang SC", "Microsoft YaHei", sans-serif'


def write_report_json(report: dict[str, Any], path: str | Path) -> None:
    """Write ``report`` as indented UTF-8 JSON (Chinese kept readable, not \\u-escaped)."""
    try:
        Path(path).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    except OSError as err:
        raise GroupscoreError(f"cannot write {path}: {err}") from None


def _fmt_pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}%"


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _trend_text(group: dict[str, Any]) -> str:
    falling = group.get("trend", {}).get("falling")
    return {True: "falling", False: "not falling", None: "n/a"}[falling]


# ---------------------------------------------------------------------- terminal
def summary_table(report: dict[str, Any]) -> Table:
    """One row per group with the headline figures (percentages 0–100); topics in the caption."""
    table = Table(title="groupscore", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True)
    table.add_column("group", overflow="fold", min_width=6)
    for col in ("msgs", "base", "act%", "eff", "share%", "vert%", "ad%", "ans%", "flood%", "trend"):
        # trend may wrap ("not / falling"): the figures never do, even in an 80-column terminal
        table.add_column(col, justify="left" if col == "trend" else "right", no_wrap=col != "trend")
    topics = []
    for g in report.get("groups", []):
        topic = g.get("topic", {})
        kws = " ".join(topic.get("keywords", [])[:6])
        topics.append(f"{g['group'] or '(unnamed)'}: " + (f"induced [{kws}]" if topic.get("induced")
                                                         else topic.get("description") or kws or "-"))
        q = g.get("questions", {})
        table.add_row(
            g["group"] or "(unnamed)",
            f"{g['messages'] - g['system']:,}",
            f"{g['members_base']:,}" + ("" if g["members_base_source"] == "distinct_senders" else "*"),
            _num(g["effective_activity"]),
            f"{g.get('effective_members', 0)}/{g.get('effective_members_any', g.get('effective_members', 0))}",
            _num(g["effective_message_share"]),
            _num(g["verticality"]),
            _num(g["ad_rate"]),
            _num(q.get("answered_rate")),
            _num(g["flood_rate"]),
            _trend_text(g),
        )
    settings = report.get("settings", {})
    conf = settings.get("member_confidence")
    if settings.get("member_rule") == "family-wise":
        counted = "members with an on-topic message the model is sure enough of (surer, the more they post)"
    elif conf:
        counted = f"members with an on-topic message the model is ≥ {conf:.0%} sure of"
    else:
        counted = "members with an on-topic message"
    table.caption = (f"act = 有效活跃度 effective activity: {counted} ÷ base; eff = those members / members "
                     "with any on-topic message; share = effective message share, vert = 垂直度 verticality (both "
                     "estimated from the model's probabilities, not counted on labels), "
                     "ans = questions answered; base* = given member count (else distinct senders)\ntopics: "
                     + "; ".join(topics))
    table.caption_justify = "left"
    return table


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


# ---------------------------------------------------------------------- SVG charts
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    for step in (1, 2, 2.5, 5, 10):
        if v <= step * mag:
            return step * mag
    return 10 * mag


def svg_hbars(items: Sequence[tuple[str, float, str]], *, width: int = 520, unit: str = "", title: str = "") -> str:
    """Horizontal bars ``(label, value, colour)``; the value is printed after each bar."""
    if not items:
        return '<p class="empty">no data</p>'
    row, label_w, pad = 30, 170, 60
    height = row * len(items) + 10
    top = max(v for _, v, _ in items) or 1
    parts = [f'<svg class="chart" role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value, colour) in enumerate(items):
        y = 5 + i * row
        w = (width - label_w - pad) * (value / top)
        shown = f"{value:g}{unit}"
        parts.append(f'<text x="{label_w - 8}" y="{y + 19}" text-anchor="end" class="lbl">{_e(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row - 10}" rx="3" fill="{colour}">'
                     f'<title>{_e(label)}: {_e(shown)}</title></rect>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 19}" class="val">{_e(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_stacked(items: Sequence[tuple[str, float, str]], *, width: int = 520, title: str = "") -> str:
    """One 100 % bar split by share, with a legend below it."""
    total = sum(v for _, v, _ in items)
    if not total:
        return '<p class="empty">no messages</p>'
    height = 40 + 24 * len(items)
    parts = [f'<svg class="chart" role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    x = 0.0
    for label, value, colour in items:
        w = width * value / total
        if w > 0:
            parts.append(f'<rect x="{x:.1f}" y="4" width="{w:.1f}" height="24" fill="{colour}">'
                         f'<title>{_e(label)}: {value:g}</title></rect>')
        x += w
    for i, (label, value, colour) in enumerate(items):
        y = 44 + 24 * i
        parts.append(f'<rect x="0" y="{y - 12}" width="14" height="14" rx="2" fill="{colour}"/>')
        parts.append(f'<text x="22" y="{y}" class="lbl">{_e(label)} — {value:,.0f} '
                     f'({100 * value / total:.1f}%)</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_line(points: Sequence[tuple[str, float | None]], *, width: int = 1120, height: int = 240,
             unit: str = "%", title: str = "") -> str:
    """A line over ``(x label, y)`` points with a y grid and thinned x labels."""
    if not points:
        return '<p class="empty">no dated messages</p>'
    left, right, top, bottom = 48, 16, 12, 44
    pw, ph = width - left - right, height - top - bottom
    ys = [v or 0.0 for _, v in points]
    ymax = _nice_max(max(ys))
    n = len(points)

    def px(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def py(v: float) -> float:
        return top + ph - ph * v / ymax

    parts = [f'<svg class="chart" role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for k in range(5):
        v = ymax * k / 4
        y = py(v)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{v:g}{unit}</text>')
    step = max(1, math.ceil(n / 8))
    for i in range(0, n, step):
        parts.append(f'<text x="{px(i):.1f}" y="{height - bottom + 18}" text-anchor="middle" class="tick">'
                     f'{_e(points[i][0])}</text>')
    coords = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(ys))
    parts.append(f'<polyline points="{coords}" fill="none" stroke="#2f8f5b" stroke-width="2"/>')
    if n <= 62:
        for i, (x, v) in enumerate(points):
            parts.append(f'<circle cx="{px(i):.1f}" cy="{py(v or 0):.1f}" r="3" fill="#2f8f5b">'
                         f'<title>{_e(x)}: {"–" if v is None else f"{v:g}{unit}"}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def svg_hours(hourly: Sequence[dict[str, Any]], *, width: int = 1120, height: int = 220, title: str = "") -> str:
    """24 bars: all messages (light) with the effective part (dark) in front."""
    if not hourly or not any(h["messages"] for h in hourly):
        return '<p class="empty">no dated messages</p>'
    left, right, top, bottom = 48, 16, 12, 30
    pw, ph = width - left - right, height - top - bottom
    ymax = _nice_max(max(h["messages"] for h in hourly))
    bw = pw / 24
    parts = [f'<svg class="chart" role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for k in range(5):
        v = ymax * k / 4
        y = top + ph - ph * k / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{v:g}</text>')
    for h in hourly:
        x = left + h["hour"] * bw
        for value, colour, kind in ((h["messages"], "#b9d8c6", "messages"), (h["effective"], "#2f8f5b", "effective")):
            bh = ph * value / ymax
            parts.append(f'<rect x="{x + 2:.1f}" y="{top + ph - bh:.1f}" width="{bw - 4:.1f}" height="{bh:.1f}" '
                         f'fill="{colour}"><title>{h["hour"]:02d}:00 {kind}: {value}</title></rect>')
        if h["hour"] % 3 == 0:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{height - 10}" text-anchor="middle" class="tick">'
                         f'{h["hour"]:02d}</text>')
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------- HTML
CSS = """
:root { color-scheme: light; }
body { font-family: %s; margin: 0; background: #f4f6f8; color: #1d2733; }
main { max-width: 1180px; margin: 0 auto; padding: 24px; }
h1 { font-size: 26px; margin: 8px 0 4px; } h2 { font-size: 22px; margin: 0 0 6px; }
h3 { font-size: 15px; margin: 14px 0 8px; color: #44515f; }
.meta, .topic { color: #5b6b7b; font-size: 13px; }
section.group { background: #fff; border-radius: 10px; padding: 20px 24px; margin: 20px 0;
  box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; margin: 14px 0; }
.kpi { background: #f0f5f2; border-radius: 8px; padding: 10px 12px; }
.kpi b { display: block; font-size: 22px; } .kpi span { font-size: 12px; color: #5b6b7b; }
.kpi.warn { background: #fbecec; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 24px; }
table { border-collapse: collapse; width: 100%%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e6e9ed; vertical-align: top; }
th { background: #f7f9fa; } td.num, th.num { text-align: right; white-space: nowrap; }
td.text { word-break: break-word; } td.time { white-space: nowrap; }
.badge { display: inline-block; background: #fff4dc; color: #8a5a00; border-radius: 4px; padding: 1px 6px; font-size: 12px; }
.kw { display: inline-block; background: #eef3f7; border-radius: 4px; padding: 1px 6px; margin: 2px; font-size: 12px; }
svg.chart { max-width: 100%%; height: auto; }
svg .lbl { font-size: 13px; fill: #1d2733; } svg .val { font-size: 12px; fill: #44515f; }
svg .tick { font-size: 11px; fill: #5b6b7b; } svg .grid { stroke: #e6e9ed; stroke-width: 1; }
.empty { color: #8895a3; font-style: italic; }
.warnings { color: #8a5a00; font-size: 13px; }
""" % FONT_STACK


def _effective_members_text(g: dict[str, Any]) -> str:
    """What the effective-activity figure counts, in an operator's words."""
    sure, any_ = g.get("effective_members"), g.get("effective_members_any")
    conf = g.get("member_confidence") or 0
    rule = g.get("member_rule") or {}
    if any_ is not None and rule.get("rule") == "family-wise":
        t = rule.get("thresholds", {})
        return (f"{sure} of the {any_} members with on-topic messages: those with one the model is sure enough of, "
                f"≥ {t.get('1', 0):.0%} for a member with 1 message, ≥ {t.get('10', 0):.0%} with 10")
    if any_ is None or not conf:
        return f"{sure} member{'' if sure == 1 else 's'} with an on-topic message"
    return (f"{sure} of the {any_} members with on-topic messages: those with at least one the model is "
            f"≥ {conf:.0%} sure of")


def _members_note(report: dict[str, Any]) -> str:
    settings = report.get("settings", {})
    conf = settings.get("member_confidence")
    vert = ("垂直度 is the expected share of effective messages (on-topic talk and on-topic questions) among "
            "the non-ads, summed from the model's probabilities: counting labels misses the talk the model is "
            "unsure of. Each group also shows the share by labels.")
    if settings.get("member_rule") == "family-wise":
        return ('<p class="meta">有效活跃度 counts a member on their best on-topic message when the model is sure '
                "enough of it, and asks more of members who post more: one doubtful message among a chatter's "
                "many does not make them active, and a member with one clear message counts. Each group shows "
                f"how many members have any on-topic message. {vert}</p>")
    if not conf:
        return f'<p class="meta">{vert}</p>'
    return (f'<p class="meta">有效活跃度 counts a member on an on-topic message the model is at least {conf:.0%} '
            "sure of (a single doubtful message does not make a chatter active); each group shows how many "
            f"members have any on-topic message. {vert}</p>")


def _kpi(label: str, value: str, warn: bool = False) -> str:
    return f'<div class="kpi{" warn" if warn else ""}"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], num: Sequence[int] = (), text: Sequence[int] = ()) -> str:
    if not rows:
        return '<p class="empty">none</p>'
    num_cls = ' class="num"'
    head = "".join(f"<th{num_cls if i in num else ''}>{_e(h)}</th>" for i, h in enumerate(headers))
    body = []
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            cls = ' class="num"' if i in num else (' class="text"' if i in text else (' class="time"' if headers[i] == "time" else ""))
            cells.append(f"<td{cls}>{_e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _topic_html(topic: dict[str, Any]) -> str:
    kws = "".join(f'<span class="kw">{_e(k)}</span>' for k in topic.get("keywords", [])[:20])
    if topic.get("induced"):
        return f'<p class="topic"><span class="badge">topic induced from the chat</span> {kws}</p>'
    desc = _e(topic.get("description", "")) or "(no description)"
    return f'<p class="topic">Topic: {desc} {kws}</p>'


def _group_html(g: dict[str, Any]) -> str:
    q = g["questions"]
    m = g["members"]
    trend = g.get("trend", {})
    base_src = {"given": "given", "export": "from export", "distinct_senders": "distinct senders"}.get(
        g["members_base_source"], g["members_base_source"])
    kpis = "".join([
        _kpi(f"有效活跃度 effective activity ({_effective_members_text(g)})", _fmt_pct(g["effective_activity"])),
        _kpi(f"effective message share (estimated; by labels {_fmt_pct(g.get('effective_message_share_labelled'))})",
             _fmt_pct(g["effective_message_share"])),
        _kpi(f"垂直度 verticality (estimated; by labels {_fmt_pct(g.get('verticality_labelled'))})",
             _fmt_pct(g["verticality"])),
        _kpi("ad rate", _fmt_pct(g["ad_rate"]), warn=(g["ad_rate"] or 0) >= 10),
        _kpi(f"questions answered ({q['answered']}/{q['count']})", _fmt_pct(q["answered_rate"])),
        _kpi("median time to first answer", _fmt_seconds(q["median_seconds_to_first_answer"])),
        _kpi("flood rate", _fmt_pct(g["flood_rate"]), warn=(g["flood_rate"] or 0) >= 10),
        _kpi(f"members base ({base_src})", f"{g['members_base']:,}"),
        _kpi("messages (excl. system)", f"{g['messages'] - g['system']:,}"),
        _kpi("weekly trend", _trend_text(g), warn=trend.get("falling") is True),
    ])
    labels = g["labels"]
    label_chart = svg_stacked([(LABEL_NAMES[k], labels[k], LABEL_COLOURS[k]) for k in LABEL_COLOURS],
                              title="label mix")
    daily = svg_line([(d["date"][5:], d["effective_activity"]) for d in g["daily"]], title="daily effective activity")
    hours = svg_hours(g["hourly"], title="hour-of-day activity")
    strata_items = [(name, m["strata"][key], colour) for key, name, colour in STRATA if m["strata"].get(key) is not None]
    strata = svg_hbars(strata_items, title="member strata")
    unanswered = _table(
        ["time", "asked by", "question", "relevance"],
        [(u["time"].replace("T", " ")[:16], u["sender"], u["text"], f"{u['relevance']:.2f}") for u in q["unanswered"][:UNANSWERED_HTML]],
        num=(3,), text=(2,))
    ads = _table(["member", "ads", "messages"],
                 [(a["name"], a["ads"], a["messages"]) for a in m["top_ad_posters"]], num=(1, 2))
    weekly = _table(["ISO week", "messages", "effective", "effective members", "有效活跃度"],
                    [(w["week"], w["messages"], w["effective"], w["effective_members"], _fmt_pct(w["effective_activity"]))
                     for w in g["weekly"][-12:]], num=(1, 2, 3, 4))
    warnings = "".join(f"<li>{_e(w)}</li>" for w in g.get("warnings", []))
    span = ""
    if g.get("first_time"):
        span = f'{_e(g["first_time"][:10])} – {_e(g["last_time"][:10])} · '
    return f"""
<section class="group">
<h2>{_e(g["group"] or "(unnamed group)")}</h2>
<p class="meta">{span}{g["messages"]:,} records, {g["system"]:,} system · {m["senders"]:,} senders · {m["ad_posters"]:,} ad posters</p>
{_topic_html(g["topic"])}
{f'<ul class="warnings">{warnings}</ul>' if warnings else ''}
<div class="kpis">{kpis}</div>
<div class="grid2">
<div><h3>Label mix</h3>{label_chart}</div>
<div><h3>Member strata</h3>{strata}</div>
</div>
<h3>Daily effective activity (有效活跃度, % of members base)</h3>{daily}
<h3>Hour-of-day activity (light: all messages, dark: effective)</h3>{hours}
<div class="grid2">
<div><h3>Unanswered questions ({q["unanswered_count"]:,}; the {min(UNANSWERED_HTML, len(q["unanswered"]))} most relevant)</h3>{unanswered}</div>
<div><h3>Top ad posters</h3>{ads}<h3>Weekly (last 12 ISO weeks; {_e(trend.get("rule", ""))})</h3>{weekly}</div>
</div>
</section>"""


def render_html(report: dict[str, Any]) -> str:
    """The whole report as ONE self-contained HTML page (inline CSS and SVG, no scripts)."""
    groups = report.get("groups", [])
    model = report.get("model", {})
    model_text = " ".join(str(model[k]) for k in ("backend", "name", "version") if model.get(k))
    overview = _table(
        ["group", "messages", "members base", "有效活跃度", "垂直度", "ad rate", "answered", "trend"],
        [(g["group"] or "(unnamed)", f"{g['messages'] - g['system']:,}", f"{g['members_base']:,}",
          _fmt_pct(g["effective_activity"]), _fmt_pct(g["verticality"]), _fmt_pct(g["ad_rate"]),
          _fmt_pct(g["questions"]["answered_rate"]), _trend_text(g)) for g in groups],
        num=(1, 2, 3, 4, 5, 6))
    inputs = _table(["input", "format", "read", "skipped", "already read"],
                    [(i.get("path", ""), i.get("format", ""), i.get("read", 0), i.get("skipped", 0),
                      "–" if i.get("duplicates") is None else i["duplicates"])
                     for i in report.get("inputs", [])], num=(2, 3, 4))
    errors = [f"{i.get('path', '')}:{e['line']}: {e['reason']}" for i in report.get("inputs", [])
              for e in i.get("errors", [])[:10]]
    errors += [f"{i.get('path', '')}:{e['line']}: repaired: {e['reason']}" for i in report.get("inputs", [])
               for e in i.get("repairs", [])[:10]]
    errors_html = ("<ul class=\"warnings\">" + "".join(f"<li>{_e(x)}</li>" for x in errors) + "</ul>") if errors else ""
    warnings = "".join(f"<li>{_e(w)}</li>" for w in report.get("warnings", []))
    anon = " · member names anonymized" if report.get("settings", {}).get("anonymized") else ""
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>groupscore report</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>groupscore report</h1>
<p class="meta">generated {_e(report.get("generated_at", ""))} · model {_e(model_text or "unknown")}{anon}</p>
{f'<ul class="warnings">{warnings}</ul>' if warnings else ''}
<section class="group"><h2>Groups</h2>{overview}{_members_note(report)}
<h3>Inputs</h3>{inputs}{errors_html}</section>
{''.join(_group_html(g) for g in groups)}
</main>
</body>
</html>
"""
