"""The report as one self-contained HTML file: Plotly charts with Plotly's JavaScript inlined,
so it opens with no network."""

from __future__ import annotations

import html
from collections import defaultdict
from typing import TYPE_CHECKING

from streamlake.report.data import JobRun, ReportData

if TYPE_CHECKING:
    from datetime import datetime

    import plotly.graph_objects as go

# Node colours of the pipeline graph by what a node is (the part before ": ").
NODE_COLOURS = {
    "job": "#636efa",
    "raw": "#ab63fa",
    "processed": "#00cc96",
    "quarantine": "#ef553b",
    "curated": "#19d3f3",
    "export": "#ffa15a",
    "firehose": "#ff6692",
    "glue": "#b6e880",
}
SOURCE_COLOUR = "#fecb52"
STATE_COLOURS = {"stopped": "#00cc96", "failed": "#ef553b", "running": "#636efa"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-bottom: 1.5rem; }
section { margin-bottom: 2rem; } .empty { color: #888; font-style: italic; }
table { border-collapse: collapse; } td, th { padding: 0.25rem 0.75rem; text-align: left;
  border-bottom: 1px solid #ddd; } .failed { color: #c62828; }
"""


def render(data: ReportData) -> str:
    """The whole page."""
    import plotly.offline

    sections = [
        ("Pipeline", pipeline_graph(data), ""),
        ("Throughput", throughput_chart(data), "No streaming job has written a heartbeat yet."),
        ("Source lag", lag_chart(data), "No streaming job has reported its source lag yet."),
        ("Quarantine", quarantine_chart(data), "Nothing is quarantined."),
        ("Tables", sizes_chart(data), "No table has data yet."),
        ("Job runs", runs_chart(data), "No job has run yet."),
    ]
    body = [
        f"<h1>{html.escape(data.pipeline)}</h1>",
        f'<div class="meta">lake {html.escape(data.lake_root)} · '
        f"generated {data.generated_at:%Y-%m-%d %H:%M:%S} UTC</div>",
    ]
    for title, figure, empty in sections:
        body.append(f"<section><h2>{title}</h2>")
        if figure is None:
            body.append(f'<p class="empty">{empty}</p>')
        else:
            body.append(figure.to_html(full_html=False, include_plotlyjs=False))
        if title == "Job runs":
            body.append(runs_table(data))
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(data.pipeline)}: streamlake report</title>"
        f"<style>{STYLE}</style>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>'
        f"</head><body>{''.join(body)}</body></html>\n"
    )


def figure(*traces: object, title: str, height: int = 420) -> go.Figure:
    import plotly.graph_objects as go

    chart = go.Figure(list(traces))
    chart.update_layout(title=title, height=height, margin={"t": 50, "l": 60, "r": 20})
    return chart


def pipeline_graph(data: ReportData) -> go.Figure | None:
    import plotly.graph_objects as go

    nodes = list(dict.fromkeys(n for f in data.flows for n in (f.source, f.target)))
    if not nodes:
        return None
    index = {name: i for i, name in enumerate(nodes)}
    colours = [NODE_COLOURS.get(n.split(": ", 1)[0], SOURCE_COLOUR) for n in nodes]
    sankey = go.Sankey(
        node={"label": nodes, "color": colours, "pad": 14, "thickness": 16},
        link={
            "source": [index[f.source] for f in data.flows],
            "target": [index[f.target] for f in data.flows],
            "value": [f.rows for f in data.flows],
        },
    )
    return figure(sankey, title="Sources, jobs, tables and sinks (widths: rows)", height=560)


def throughput_chart(data: ReportData) -> go.Figure | None:
    """Rows per second per streaming job between consecutive heartbeats of a run."""
    import plotly.graph_objects as go

    series: dict[str, tuple[list[object], list[float]]] = defaultdict(lambda: ([], []))
    previous: dict[tuple[str, str], datetime] = {}
    for beat in data.beats:
        key = (beat.job, beat.run_id)
        before = previous.get(key)
        previous[key] = beat.beat_at
        if before is None:
            continue
        seconds = (beat.beat_at - before).total_seconds()
        if seconds > 0:
            series[beat.job][0].append(beat.beat_at)
            series[beat.job][1].append(round(beat.figures.rows / seconds, 2))
    traces = [
        go.Scatter(x=x, y=y, mode="lines+markers", name=job) for job, (x, y) in series.items()
    ]
    if not any(any(y) for _, y in series.values()):
        return None
    chart = figure(*traces, title="Rows per second, per streaming job")
    chart.update_yaxes(title_text="rows/s")
    return chart


def lag_chart(data: ReportData) -> go.Figure | None:
    """Source lag per streaming job over time: records (Kafka, raw tables) and seconds
    (Kinesis, DynamoDB Streams) on two axes."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    records: dict[str, tuple[list[object], list[float]]] = defaultdict(lambda: ([], []))
    seconds: dict[str, tuple[list[object], list[float]]] = defaultdict(lambda: ([], []))
    for beat in data.beats:
        figures = beat.figures
        if figures.source_lag is not None:
            records[beat.job][0].append(beat.beat_at)
            records[beat.job][1].append(figures.source_lag)
        if figures.source_lag_s is not None:
            seconds[beat.job][0].append(beat.beat_at)
            seconds[beat.job][1].append(figures.source_lag_s)
    if not records and not seconds:
        return None
    chart = make_subplots(
        rows=1, cols=2, subplot_titles=("records behind", "seconds behind"), shared_xaxes=False
    )
    for col, found in ((1, records), (2, seconds)):
        for job, (x, y) in found.items():
            chart.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=job), row=1, col=col)
    chart.update_layout(title="Source lag, per streaming job", height=420)
    return chart


def quarantine_chart(data: ReportData) -> go.Figure | None:
    import plotly.graph_objects as go

    if not data.quarantine:
        return None
    tables = sorted({t for t, _ in data.quarantine})
    reasons = sorted({r for _, r in data.quarantine})
    traces = [
        go.Bar(name=reason, x=tables, y=[data.quarantine.get((t, reason), 0) for t in tables])
        for reason in reasons
    ]
    chart = figure(*traces, title="Quarantined records by table and reason")
    chart.update_layout(barmode="stack")
    return chart


def sizes_chart(data: ReportData) -> go.Figure | None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    measured = {k: v for k, v in data.sizes.items() if v.files}
    if not measured:
        return None
    chart = make_subplots(rows=1, cols=2, subplot_titles=("megabytes", "files"))
    for layer in dict.fromkeys(layer for layer, _ in measured):
        names = [t for (lay, t) in measured if lay == layer]
        sizes = [measured[(layer, t)] for t in names]
        megabytes = [round(s.bytes / 2**20, 3) for s in sizes]
        colour = NODE_COLOURS.get(layer)
        bar = {"name": layer, "legendgroup": layer, "marker_color": colour}
        chart.add_trace(go.Bar(x=names, y=megabytes, **bar), row=1, col=1)
        files = [s.files for s in sizes]
        chart.add_trace(go.Bar(x=names, y=files, showlegend=False, **bar), row=1, col=2)
    chart.update_layout(title="Table sizes and file counts, per layer", height=420)
    return chart


def runs_chart(data: ReportData) -> go.Figure | None:
    """Each run as a bar from its start to its end, coloured by how it ended."""
    import plotly.graph_objects as go

    runs = data.runs[:50]
    if not runs:
        return None
    traces = []
    for state in dict.fromkeys(r.state for r in runs):
        chosen = [r for r in runs if r.state == state]
        traces.append(
            go.Bar(
                name=state,
                orientation="h",
                y=[r.job for r in chosen],
                base=[r.started_at.isoformat() for r in chosen],
                x=[max(1.0, (r.ended_at - r.started_at).total_seconds() * 1000) for r in chosen],
                marker_color=STATE_COLOURS.get(state),
            )
        )
    chart = figure(*traces, title="Job runs (latest 50)")
    chart.update_xaxes(type="date")
    return chart


def runs_table(data: ReportData) -> str:
    """The latest run of each job."""
    latest: dict[str, JobRun] = {}
    for run in data.runs:
        latest.setdefault(run.job, run)
    if not latest:
        return ""
    rows = "".join(
        f'<tr class="{html.escape(r.state)}"><td>{html.escape(r.job)}</td>'
        f"<td>{html.escape(r.kind)}</td><td>{html.escape(r.state)}</td>"
        f"<td>{r.started_at:%Y-%m-%d %H:%M:%S}</td>"
        f"<td>{(r.ended_at - r.started_at).total_seconds():.1f}</td>"
        f"<td>{html.escape(r.error or '')}</td></tr>"
        for r in latest.values()
    )
    return (
        "<h3>Last run of each job</h3><table><tr><th>job</th><th>kind</th><th>state</th>"
        f"<th>started (UTC)</th><th>seconds</th><th>error</th></tr>{rows}</table>"
        + workflow_runs_table(data)
    )


def workflow_runs_table(data: ReportData) -> str:
    """The latest workflow runs, each with its jobs' outcomes."""
    if not data.workflow_runs:
        return '<p class="empty">No workflow has run yet.</p>'
    rows = []
    for run in data.workflow_runs:
        record = run.record
        jobs = "<br>".join(
            html.escape(
                f"{j.record.job}: {j.record.state}"
                + (f" ({j.attempts} tries)" if j.attempts > 1 else "")
                + (f": {j.record.error}" if j.record.error else "")
            )
            for j in run.jobs
        )
        seconds = f"{record.seconds:.1f}" if record.seconds is not None else ""
        rows.append(
            f'<tr class="{html.escape(run.state)}"><td>{html.escape(record.workflow)}</td>'
            f"<td>{html.escape(record.run_id)}</td><td>{html.escape(record.trigger)}</td>"
            f"<td>{html.escape(run.state)}</td><td>{record.started_at:%Y-%m-%d %H:%M:%S}</td>"
            f"<td>{seconds}</td><td>{jobs}</td></tr>"
        )
    return (
        f"<h3>Workflow runs (latest {len(rows)})</h3><table><tr><th>workflow</th><th>run</th>"
        "<th>trigger</th><th>state</th><th>started (UTC)</th><th>seconds</th><th>jobs</th>"
        f"</tr>{''.join(rows)}</table>"
    )
