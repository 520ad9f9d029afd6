"""The report's document model and its three renderings: self-contained HTML, Markdown, JSON."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

from .._io import atomic_path, write_json, write_text


@dataclass
class Table:
    caption: str
    header: list[str]
    rows: list[list]


@dataclass
class Figure:
    caption: str
    png: bytes
    name: str  # file name under figures/


@dataclass
class Section:
    key: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add_figure(self, fig, caption: str, name: str) -> None:
        """Store a matplotlib figure as PNG bytes."""
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        self.figures.append(Figure(caption, buf.getvalue(), f"{self.key}_{name}.png"))


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    return str(v)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:0.9em;color:#555}
code,pre{background:#f6f6f6;padding:2px 4px;border-radius:3px;font-size:0.9em}
pre{padding:8px;overflow-x:auto}
.meta td{text-align:left}
"""


def render_html(title: str, header: dict, sections: list[Section]) -> str:
    esc = html.escape
    out = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}"
        f"</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    out.append("<table class='meta'>")
    for k, v in header.items():
        out.append(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>")
    out.append("</table>")
    for s in sections:
        out.append(f"<h2 id='{esc(s.key)}'>{esc(s.title)}</h2>")
        for p in s.paragraphs:  # multi-line paragraphs are preformatted printouts
            out.append(f"<pre>{esc(p)}</pre>" if "\n" in p else f"<p>{esc(p)}</p>")
        for t in s.tables:
            out.append(f"<table><caption>{esc(t.caption)}</caption><tr>")
            out.extend(f"<th>{esc(h)}</th>" for h in t.header)
            out.append("</tr>")
            for row in t.rows:
                out.append("<tr>" + "".join(f"<td>{esc(_cell(c))}</td>" for c in row) + "</tr>")
            out.append("</table>")
        for f in s.figures:
            b64 = base64.b64encode(f.png).decode("ascii")
            out.append(
                f"<figure><img alt='{esc(f.caption)}' src='data:image/png;base64,{b64}'>"
                f"<figcaption>{esc(f.caption)}</figcaption></figure>"
            )
        if s.commands:
            out.append("<p>Re-run at full scale:</p><pre>" + esc("\n".join(s.commands)) + "</pre>")
        out.append(f"<p><small>section time: {s.seconds:.1f} s</small></p>")
    out.append("</body></html>")
    return "\n".join(out)


def render_markdown(title: str, header: dict, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    out += [f"- **{k}**: {v}" for k, v in header.items()]
    for s in sections:
        out += ["", f"## {s.title}", ""]
        for p in s.paragraphs:
            out += ["```", p, "```", ""] if "\n" in p else [p, ""]
        for t in s.tables:
            out += [
                f"**{t.caption}**",
                "",
                "| " + " | ".join(t.header) + " |",
                "|" + "---|" * len(t.header),
            ]
            out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
            out.append("")
        for f in s.figures:
            out += [f"![{f.caption}](figures/{f.name})", "", f"*{f.caption}*", ""]
        if s.commands:
            out += ["Re-run at full scale:", "", "```bash", *s.commands, "```", ""]
    return "\n".join(out) + "\n"


def write_report(out_dir, title: str, header: dict, sections: list[Section]) -> dict:
    """Write report.html, report.md, results.json and figures/*.png atomically."""
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    for s in sections:
        for f in s.figures:
            with atomic_path(out_dir / "figures" / f.name) as tmp:
                tmp.write_bytes(f.png)
    results = {
        "header": header,
        "sections": {
            s.key: {"title": s.title, "seconds": s.seconds, **s.numbers, "commands": s.commands}
            for s in sections
        },
    }
    paths = {
        "html": write_text(out_dir / "report.html", render_html(title, header, sections)),
        "md": write_text(out_dir / "report.md", render_markdown(title, header, sections)),
        "json": write_json(out_dir / "results.json", results),
    }
    return {k: str(v) for k, v in paths.items()}
