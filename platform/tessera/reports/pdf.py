"""Lays a `ReportContent` out as an A4 PDF with ReportLab. The font is DejaVu Sans, which
matplotlib ships, embedded in the file: names and symbols in any European script print, and
nothing is fetched."""

import io
from pathlib import Path
from xml.sax.saxutils import escape

import matplotlib
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from tessera.jobs.models import ModelVersion
from tessera.reports.content import ReportContent

FONT, BOLD = "DejaVuSans", "DejaVuSans-Bold"
_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
INK, MUTED, RULE = (
    colors.HexColor("#1d2330"),
    colors.HexColor("#5b6472"),
    colors.HexColor("#c8ced8"),
)
NOTICE_FILL, NOTICE_EDGE = colors.HexColor("#fff6dc"), colors.HexColor("#d9a400")
MARGIN = 18 * mm


def _register_fonts() -> None:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(FONT, str(_FONTS / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont(BOLD, str(_FONTS / "DejaVuSans-Bold.ttf")))


def _style(
    name: str, size: float, *, bold: bool = False, colour=INK, space: float = 0, **more
) -> ParagraphStyle:
    return ParagraphStyle(
        name,
        fontName=BOLD if bold else FONT,
        fontSize=size,
        leading=size * 1.3,
        textColor=colour,
        spaceAfter=space,
        **more,
    )


STYLES = {
    "organization": _style("organization", 9, bold=True, colour=MUTED),
    "title": _style("title", 18, bold=True, space=2),
    "about": _style("about", 12, space=2),
    "meta": _style("meta", 8.5, colour=MUTED),
    "heading": _style("heading", 11.5, bold=True, space=4, keepWithNext=1),
    "body": _style("body", 9),
    "cell": _style("cell", 7.5),
    "head": _style("head", 7.5, bold=True),
    "note": _style("note", 7.5, colour=MUTED),
    "notice": _style("notice", 9, bold=True),
}


def _text(value: str, style: str) -> Paragraph:
    return Paragraph(escape(value), STYLES[style])


def render_pdf(content: ReportContent) -> tuple[bytes, int]:
    """The PDF's bytes and its number of pages."""
    _register_fonts()
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 4 * mm,
        title=f"{content.title}: {content.about}",
        author=f"Tessera for {content.organization}",
        subject=content.notice,
    )
    width = document.width
    story = [
        _text(content.organization, "organization"),
        _text(content.title, "title"),
        _text(content.about, "about"),
        _text(f"Period: {content.period}. Generated {content.generated}.", "meta"),
        Spacer(1, 4 * mm),
        _notice(content.notice, width),
        Spacer(1, 4 * mm),
        _grid([[_text(k, "body"), _text(v, "body")] for k, v in content.facts], [0.6, 0.4], width),
    ]
    for chart in content.charts:
        image = Image(io.BytesIO(chart.png))
        image.drawWidth, image.drawHeight = width, width * image.imageHeight / image.imageWidth
        story += [Spacer(1, 5 * mm), KeepTogether([_text(chart.title, "heading"), image])]
    for table in content.tables:
        rows = [[_text(h, "head") for h in table.header]] + [
            [_text(cell, "cell") for cell in row] for row in table.rows
        ]
        if not table.rows:
            rows.append([_text("None in this period.", "cell")] + [""] * (len(table.header) - 1))
        share = list(table.shares) or [1 / len(table.header)] * len(table.header)
        story += [
            Spacer(1, 5 * mm),
            _text(table.title, "heading"),
            _grid(rows, share, width, header=True),
        ]
        if table.note:
            story.append(_text(table.note, "note"))
    if content.explanations:
        story += [Spacer(1, 5 * mm), _text("Why the model said so", "heading")]
        for when, why in content.explanations:
            story += [_text(when, "head"), _text(why, "body"), Spacer(1, 2 * mm)]
    story += [
        Spacer(1, 5 * mm),
        _text("Model versions", "heading"),
        _versions(content.model_versions, width),
    ]

    def footer(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7)
        canvas.setFillColor(MUTED)
        canvas.drawString(
            MARGIN,
            10 * mm,
            f"Tessera · {content.organization} · suggestions for a professional to confirm",
        )
        canvas.drawRightString(A4[0] - MARGIN, 10 * mm, f"Page {doc.page}")
        canvas.restoreState()

    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue(), document.page


def _notice(text: str, width: float) -> Table:
    box = Table([[_text(text, "notice")]], colWidths=[width])
    box.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), NOTICE_FILL),
                ("BOX", (0, 0), (-1, -1), 1, NOTICE_EDGE),
                ("PADDING", (0, 0), (-1, -1), 6),
            ]
        )
    )
    return box


def _grid(rows: list, shares: list[float], width: float, *, header: bool = False) -> Table:
    table = Table(
        rows, colWidths=[width * share for share in shares], repeatRows=1 if header else 0
    )
    style = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.4, RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if header:
        style.append(("LINEBELOW", (0, 0), (-1, 0), 0.8, INK))
    table.setStyle(TableStyle(style))
    return table


def _versions(versions: list[ModelVersion], width: float) -> Table:
    rows = [[_text(h, "head") for h in ("Version", "Status", "Held-out macro-F1", "Promoted")]]
    for version in versions:
        scores = ", ".join(
            f"{name} {version.metrics[task]['macro_f1']:.2f}"
            for task, name in (("diagnosis", "findings"), ("emotion", "affect"))
            if isinstance(version.metrics.get(task), dict) and "macro_f1" in version.metrics[task]
        )
        promoted = f"{version.promoted_at:%d %b %Y}" if version.promoted_at else "—"
        rows.append(
            [
                _text(cell, "cell")
                for cell in (version.name, version.get_status_display(), scores or "—", promoted)
            ]
        )
    if not versions:
        rows.append([_text("No analyses in this period.", "cell"), "", "", ""])
    return _grid(rows, [0.35, 0.2, 0.3, 0.15], width, header=True)
