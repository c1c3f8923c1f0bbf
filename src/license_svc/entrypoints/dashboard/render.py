"""The dashboard's HTML: every value that reaches the page goes through `e()` (html.escape, quotes
included), the chart is inline SVG drawn here, and the page loads nothing else — no script, no
stylesheet, no font, no image — so it works with no internet and a CSP of `default-src 'none'`.

Count cells carry `data-reseller`, `data-tier` and `data-status`, and chart bars `data-date` and
`data-count`, so a test (or a person with devtools) can read the numbers back exactly.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from html import escape

from license_svc.domain.key import KeyStatus
from license_svc.domain.tiers import Product, Tier

from .board import EXPIRING_ROWS, USAGE_DAYS, Board

STATUSES = list(KeyStatus)
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d2733;background:#f6f8fa}
h1{font-size:1.4rem;margin:0}h2{font-size:1.05rem;margin:1.6rem 0 .5rem}
header{display:flex;justify-content:space-between;align-items:baseline;gap:1rem;flex-wrap:wrap}
.meta{color:#5b6775}section{background:#fff;border:1px solid #d8dee4;border-radius:6px;
padding:.8rem 1rem;margin-top:1rem}table{border-collapse:collapse;width:100%}
th,td{padding:.25rem .6rem;border-bottom:1px solid #eaeef2;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:600}
form.filters{display:flex;gap:.6rem;align-items:center;flex-wrap:wrap}
.bar{fill:#2f81f7}.axis{stroke:#8c959f}svg text{font-size:10px;fill:#5b6775}
.empty{color:#5b6775;font-style:italic}.login{max-width:26rem;margin:4rem auto}
input,select,button{font:inherit;padding:.2rem .4rem}.error{color:#b3261e}
"""


def e(value: object) -> str:
    return escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def login(message: str, csrf: str) -> str:
    error = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    return page(
        "license-svc — sign in",
        '<section class="login"><h1>license-svc dashboard</h1>'
        "<p>Sign in with an ops or reseller token.</p>"
        f'{error}<form method="post" action="/login">'
        f'<input type="hidden" name="csrf" value="{e(csrf)}">'
        '<label>Token <input type="password" name="token" autocomplete="off" required></label> '
        '<button type="submit">Sign in</button></form></section>',
    )


def message(title: str, text: str) -> str:
    return page(title, f"<section><h1>{e(title)}</h1><p>{e(text)}</p></section>")


def board(b: Board, logout_csrf: str) -> str:
    """The page; `logout_csrf` is the sign-out form's token ('' signed in by header: no form)."""
    who = b.principal.name or b.principal.role.value
    position = b.stats.position
    head = f" · store head {b.lags[0].head:,}" if b.lags else ""
    parts = [
        "<header><h1>license-svc — operations</h1>"
        f'<span class="meta">signed in as <b>{e(who)}</b> · as of {e(_time(b.now))} · '
        f'<span id="position">catalog view at position {e(f"{position:,}")}</span>{e(head)}'
        f"</span>{_sign_out(logout_csrf)}</header>",
        _filters(b),
        _counts(b),
        _chart(b),
        _expiring(b),
        _usage(b),
    ]
    parts.append(_webhooks(b))
    if b.lags is not None:
        parts.append(_lags(b))
    if b.failures is not None:
        parts.append(_failures(b))
    if b.lags is None:
        parts.append(
            '<p class="meta">Projection lag and failed attempts are shown to ops tokens.</p>'
        )
    return page("license-svc — operations", "".join(parts))


def _sign_out(csrf: str) -> str:
    if not csrf:
        return ""
    return (
        f'<form method="post" action="/logout"><input type="hidden" name="csrf" value="{e(csrf)}">'
        '<button type="submit">Sign out</button></form>'
    )


def _filters(b: Board) -> str:
    products = "".join(
        f'<option value="{e(value)}"{" selected" if chosen else ""}>{e(label)}</option>'
        for value, label, chosen in [
            ("", "every product", b.filters.product is None),
            *[(p.value, p.value, b.filters.product is p) for p in Product],
        ]
    )
    if b.lags is None:  # a reseller: its own keys, no choice
        reseller = f"reseller <b>{e(b.filters.reseller_id)}</b>"
    else:
        choices = "".join(f'<option value="{e(r)}"></option>' for r in b.resellers)
        reseller = (
            '<label>reseller <input name="reseller" list="resellers" placeholder="every reseller"'
            f' value="{e(b.filters.reseller_id)}"></label><datalist id="resellers">{choices}'
            "</datalist>"
        )
    return (
        f'<section><form class="filters" method="get" action="/">{reseller}'
        f'<label>product <select name="product">{products}</select></label>'
        '<button type="submit">Show</button></form></section>'
    )


def _counts(b: Board) -> str:
    rows: dict[tuple[str, Tier], dict[KeyStatus, int]] = defaultdict(dict)
    for c in b.stats.counts:
        rows[(c.reseller_id, c.tier)][c.status] = c.count
    head = "".join(f'<th class="n">{e(s.value)}</th>' for s in STATUSES)
    body = []
    totals = dict.fromkeys(STATUSES, 0)
    tiers = list(Tier)
    for reseller, tier in sorted(rows, key=lambda k: (k[0], tiers.index(k[1]))):
        counts = rows[(reseller, tier)]
        cells = "".join(
            f'<td class="n" data-reseller="{e(reseller)}" data-tier="{e(tier.value)}"'
            f' data-status="{e(s.value)}">{e(f"{counts.get(s, 0):,}")}</td>'
            for s in STATUSES
        )
        for s in STATUSES:
            totals[s] += counts.get(s, 0)
        total = f'<td class="n">{e(f"{sum(counts.values()):,}")}</td>'
        body.append(f"<tr><td>{e(reseller)}</td><td>{e(tier.value)}</td>{cells}{total}</tr>")
    if not body:
        return (
            '<section><h2>Keys by tier and status</h2><p class="empty">No keys yet.</p></section>'
        )
    total_cells = "".join(
        f'<td class="n" data-total-status="{e(s.value)}">{e(f"{totals[s]:,}")}</td>'
        for s in STATUSES
    )
    grand = f'<td class="n">{e(f"{sum(totals.values()):,}")}</td>'
    body.append(f'<tr class="total"><td>all shown</td><td></td>{total_cells}{grand}</tr>')
    return (
        '<section><h2>Keys by tier and status</h2><table id="counts"><thead><tr>'
        f'<th>reseller</th><th>tier</th>{head}<th class="n">total</th></tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def _chart(b: Board) -> str:
    days = b.stats.activations_per_day
    total = sum(n for _, n in days)
    bar, gap, height, left, bottom = 8, 2, 140, 34, 22
    width = left + len(days) * (bar + gap) + 10
    peak = max([n for _, n in days] or [0]) or 1
    bars = []
    for i, (day, n) in enumerate(days):
        h = round(n / peak * height)
        x, y = left + i * (bar + gap), 10 + height - h
        bars.append(
            f'<rect class="bar" x="{x}" y="{y}" width="{bar}" height="{h}"'
            f' data-date="{e(day.isoformat())}" data-count="{e(n)}">'
            f"<title>{e(day.isoformat())}: {e(n)} activations</title></rect>"
        )
    axis_y = 10 + height
    middle = len(days) // 2
    ticks = "".join(
        f'<text x="{left + i * (bar + gap) + bar // 2}" y="{axis_y + 15}"'
        f' text-anchor="{anchor}">{e(_day(days[i][0]))}</text>'
        for i, anchor in ((0, "start"), (middle, "middle"), (len(days) - 1, "end"))
    )
    svg = (
        f'<svg id="activations" role="img" width="{width}" height="{axis_y + bottom}"'
        f' viewBox="0 0 {width} {axis_y + bottom}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>Activations per UTC day, {e(days[0][0])} to {e(days[-1][0])}</title>"
        f'<line class="axis" x1="{left - 4}" y1="{axis_y}" x2="{width - 6}" y2="{axis_y}"/>'
        f'<text x="0" y="14">{e(f"{peak:,}" if total else "0")}</text>'
        f'<text x="0" y="{axis_y}">0</text>{"".join(bars)}{ticks}</svg>'
    )
    return (
        f"<section><h2>Activations per day (UTC), last {len(days)} days: "
        f'<span id="activations-total">{e(f"{total:,}")}</span></h2>{svg}</section>'
    )


def _expiring(b: Board) -> str:
    keys = b.expiring.keys
    more = f" (the first {EXPIRING_ROWS}; more follow)" if b.expiring.more else ""
    title = f"Subscriptions ending in the next 30 days: {len(keys):,}{more}"
    if not keys:
        return f'<section><h2>{e(title)}</h2><p class="empty">None.</p></section>'
    rows = "".join(
        f'<tr data-key-id="{e(k.key_id)}"><td>{e(_time(k.period_ends_at))}</td>'
        f"<td>{e(k.account_id or '')}</td><td>{e(k.hint)}</td><td>{e(k.tier.value)}</td>"
        f'<td class="n">{e(k.seats)}</td><td>{e(k.reseller_id)}</td></tr>'
        for k in keys
    )
    return (
        f'<section><h2>{e(title)}</h2><table id="expiring"><thead><tr><th>ends</th>'
        '<th>account</th><th>key</th><th>tier</th><th class="n">seats</th><th>reseller</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _webhooks(b: Board) -> str:
    """Each endpoint's health: waiting deliveries, the oldest one's age, outcomes so far."""
    if not b.webhooks:
        return '<section><h2>Webhook endpoints</h2><p class="empty">None.</p></section>'
    rows = "".join(
        f'<tr data-endpoint-id="{e(w.endpoint_id)}"><td>{e(w.reseller_id)}</td>'
        f"<td>{e(w.endpoint_id)}</td><td>{'disabled (410)' if w.disabled else 'enabled'}</td>"
        f'<td class="n">{e(f"{w.pending:,}")}</td><td>{e(_age(b.now, w.oldest_pending_at))}</td>'
        f'<td class="n">{e(f"{w.delivered:,}")}</td><td class="n">{e(f"{w.failed:,}")}</td>'
        f'<td class="n">{e(f"{w.failed_attempts:,}")}</td></tr>'
        for w in b.webhooks
    )
    return (
        '<section><h2>Webhook endpoints</h2><table id="webhooks"><thead><tr><th>reseller</th>'
        '<th>endpoint</th><th>state</th><th class="n">pending</th><th>oldest waiting</th>'
        '<th class="n">delivered</th><th class="n">failed</th><th class="n">failed attempts</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _age(now: datetime, since: datetime | None) -> str:
    if since is None:
        return "-"
    seconds = max(0, int((now - since).total_seconds()))
    return f"{seconds // 3600} h {seconds % 3600 // 60} min" if seconds >= 3600 else f"{seconds} s"


def _usage(b: Board) -> str:
    """Seats sold against the most seat leases held at once, per account and UTC day."""
    usage = b.usage
    more = f" (the first {len(usage.days)}; more follow)" if usage.truncated else ""
    title = f"Seat use per day (UTC), last {USAGE_DAYS} days: sold vs peak leased{more}"
    if not usage.days:
        return f'<section><h2>{e(title)}</h2><p class="empty">No seats sold.</p></section>'
    rows = "".join(
        f"<tr><td>{e(d.day.isoformat())}</td><td>{e(d.account_id)}</td>"
        f'<td class="n">{e(d.seats_sold)}</td><td class="n">{e(d.peak_seats_leased)}</td>'
        f'<td class="n">{e(f"{d.peak_seats_leased / d.seats_sold:.0%}" if d.seats_sold else "")}'
        "</td></tr>"
        for d in usage.days
    )
    return (
        f'<section><h2>{e(title)}</h2><table id="seat-use"><thead><tr><th>day</th>'
        '<th>account</th><th class="n">seats sold</th><th class="n">peak leased</th>'
        f'<th class="n">used</th></tr></thead><tbody>{rows}</tbody></table></section>'
    )


def _lags(b: Board) -> str:
    assert b.lags is not None
    rows = "".join(
        f'<tr><td>{e(lag.name)}</td><td class="n">{e(f"{lag.position:,}")}</td>'
        f'<td class="n">{e(f"{lag.head:,}")}</td>'
        f'<td class="n" data-lag="{e(lag.name)}">{e(f"{lag.lag:,}")}</td></tr>'
        for lag in b.lags
    )
    return (
        '<section><h2>Projection lag</h2><table id="lag"><thead><tr><th>view</th>'
        '<th class="n">position</th><th class="n">store head</th><th class="n">lag (events)</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _failures(b: Board) -> str:
    assert b.failures is not None
    total = sum(b.failures.values())
    if not b.failures:
        return "<section><h2>Failed attempts, last hour: 0</h2></section>"
    rows = "".join(
        f'<tr><td>{e(reason)}</td><td class="n">{e(f"{n:,}")}</td></tr>'
        for reason, n in b.failures.items()
    )
    return (
        f'<section><h2>Failed attempts, last hour: <span id="failures-total">{e(total)}</span>'
        f'</h2><table id="failures"><thead><tr><th>reason</th><th class="n">attempts</th></tr>'
        f"</thead><tbody>{rows}</tbody></table></section>"
    )


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _day(value: date) -> str:
    return value.strftime("%d %b")
