#!/usr/bin/env python3
"""
Draw docs/grafana/pymta.json's panels as one SVG from real metrics: start
C{twistd pymta --metrics} on a fresh root on loopback ports, send a
bounded load for DURATION seconds (local mail, refused senders, mail to a
route whose port is closed, failed POP3 logins), scrape C{/metrics} every
second, then compute each panel's series the way its PromQL does (rates
over a short window) and draw them by hand.  A rendering for the docs,
not a Grafana screenshot.

    python3 docs/tools/render_dashboard.py OUT.svg [DURATION]
"""

from __future__ import annotations

import json
import os
import poplib
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
BOARD = os.path.join(SRC, "docs", "grafana", "pymta.json")
WINDOW = 10  # seconds over which rates are taken (the dashboard says 5m; the run is short)
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#ad494a"]
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out.append((m[1], dict(re.findall(r'(\w+)="([^"]*)"', m[2] or "")), float(m[3])))
    return out


def collect(duration: float) -> list[tuple[float, list]]:
    base = tempfile.mkdtemp(prefix="pymta-render-")
    os.chmod(base, 0o755)
    root = os.path.join(base, "root")
    init = [root, "--me", "render.example", "--user", "alice:secret"]
    if os.getuid() == 0:
        init += ["--mail-uid", "4242:4242"]
    subprocess.run([sys.executable, "-m", "pymta.cli.main", "init", *init], check=True, cwd=SRC,
                   stdout=subprocess.DEVNULL)
    closed = free_port()
    with open(os.path.join(root, "control", "smtproutes"), "w") as f:
        f.write(f"dead.example:127.0.0.1:{closed}\n")
    with open(os.path.join(root, "control", "badmailfrom"), "w") as f:
        f.write("spammer@bad.example\n")
    smtp, pop3, metrics = free_port(), free_port(), free_port()
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    proc = subprocess.Popen([twistd, "-n", "--pidfile=", f"--logfile={root}/twistd.log", "pymta", "--root", root,
                             "--smtp", f"tcp:{smtp}:interface=127.0.0.1", "--pop3", f"tcp:{pop3}:interface=127.0.0.1",
                             "--allow-plaintext-auth", "--metrics", f"tcp:{metrics}:interface=127.0.0.1"],
                            cwd=SRC, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    scrapes: list[tuple[float, list]] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", metrics), 0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("twistd pymta did not start; see " + root + "/twistd.log")
                time.sleep(0.1)
        start = time.monotonic()
        sender = threading.Thread(target=load, args=(smtp, pop3, duration, start), daemon=True)
        sender.start()
        tick = 0
        while time.monotonic() - start < duration:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as r:
                scrapes.append((time.monotonic() - start, parse(r.read().decode())))
            tick += 1
            time.sleep(max(0.0, start + tick - time.monotonic()))
        sender.join(60)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(base, True)
    return scrapes


def load(smtp: int, pop3: int, duration: float, start: float) -> None:
    """Every second until the last fifth (the queue drains then): a burst of mail, bounded."""
    for tick in range(int(duration)):
        elapsed = time.monotonic() - start
        if elapsed > duration * 0.8:
            return
        load_once(smtp, pop3, tick, duration, elapsed)
        time.sleep(max(0.0, start + tick + 1 - time.monotonic()))


def load_once(smtp: int, pop3: int, tick: int, duration: float, elapsed: float) -> None:
    """One second's load: a burst that grows then fades, a few refusals, some mail to the dead route."""
    burst = 1 + int(6 * min(elapsed, duration * 0.8 - elapsed) / (duration * 0.4))
    with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
        for n in range(burst):
            client.sendmail("load@render.example", ["alice@render.example"], f"Subject: {tick}.{n}\r\n\r\nload\r\n")
        if tick % 3 == 0:
            try:
                client.sendmail("spammer@bad.example", ["alice@render.example"], "Subject: no\r\n\r\nno\r\n")
            except smtplib.SMTPRecipientsRefused:
                pass
        if tick % 4 == 0:
            client.sendmail("load@render.example", [f"user{tick}@dead.example"], "Subject: later\r\n\r\nlater\r\n")
    if tick % 10 == 0:  # failed logins are answered ever more slowly: a few only
        pop = poplib.POP3("127.0.0.1", pop3, timeout=30)
        pop.user("alice")
        try:
            pop.pass_("wrong")
        except poplib.error_proto:
            pass
        pop.close()


def series(scrapes, name, by, rate=False, where=None):  # type: ignore[no-untyped-def]
    """C{sum by (by) (name)}, or of its rate over WINDOW seconds: {legend: [(t, v)]}."""
    sums: list[tuple[float, dict[str, float]]] = []
    for t, samples in scrapes:
        totals: dict[str, float] = {}
        for metric, labels, value in samples:
            if metric == name and (where is None or where(labels)):
                key = " ".join(labels.get(b, "") for b in by)
                totals[key] = totals.get(key, 0.0) + value
        sums.append((t, totals))
    out: dict[str, list[tuple[float, float]]] = {}
    for i, (t, totals) in enumerate(sums):
        for key, value in totals.items():
            if rate:
                j = next((k for k in range(i, -1, -1) if t - sums[k][0] >= WINDOW), None)
                if j is None:
                    continue
                value = max(0.0, value - sums[j][1].get(key, 0.0)) / (t - sums[j][0])
            out.setdefault(key, []).append((t, value))
    return out


def quantile(scrapes, q: float):  # type: ignore[no-untyped-def]
    """histogram_quantile(q, sum by (le, channel) (rate(..._bucket[WINDOW]))), linear within a bucket."""
    buckets = series(scrapes, "pymta_delivery_latency_seconds_bucket", ("channel", "le"), rate=True)
    by_time: dict[tuple[str, float], list[tuple[float, float]]] = {}
    for key, points in buckets.items():
        channel, le = key.split(" ")
        for t, v in points:
            by_time.setdefault((channel, t), []).append((float(le), v))
    out: dict[str, list[tuple[float, float]]] = {}
    for (channel, t), pairs in sorted(by_time.items(), key=lambda kv: kv[0][1]):
        pairs.sort()
        total = pairs[-1][1]
        if total <= 0:
            continue
        rank, low, below = q * total, 0.0, 0.0
        for le, count in pairs:
            if count >= rank:
                high = le if le != float("inf") else low
                value = low + (high - low) * ((rank - below) / (count - below) if count > below else 0)
                out.setdefault(f"{channel} p{int(q * 100)}", []).append((t, value))
                break
            low, below = le, count
    return out


def panels(scrapes):  # type: ignore[no-untyped-def]
    """Each panel of the dashboard, by id, as the series it draws."""
    accepted = series(scrapes, "pymta_smtpd_messages_accepted_total", (), rate=True)
    refused = series(scrapes, "pymta_smtpd_refusals_total", ("reason",), rate=True)
    return {
        1: {"accepted": accepted.get("", []), **{f"refused: {k}": v for k, v in refused.items()}},
        2: {**{f"{k} sessions": v for k, v in series(scrapes, "pymta_sessions_total", ("service",), rate=True).items()},
            **{f"{k} failed logins": v for k, v in
               series(scrapes, "pymta_login_failures_total", ("service",), rate=True).items()}},
        3: series(scrapes, "pymta_queue_messages", ("state",), where=lambda lb: True),
        4: {k if k == "unknown" else f"{k} min": v for k, v in series(scrapes, "pymta_queue_messages_by_age", ("age_minutes",)).items()},
        5: series(scrapes, "pymta_deliveries_total", ("channel", "result"), rate=True),
        6: {**quantile(scrapes, 0.5), **quantile(scrapes, 0.95)},
        7: {**{f"{k} in use": v for k, v in series(scrapes, "pymta_channel_concurrency_used", ("channel",)).items()},
            **{f"{k} limit": v for k, v in series(scrapes, "pymta_channel_concurrency_limit", ("channel",)).items()}},
        8: {"dead hosts": series(scrapes, "pymta_remote_hosts_dead", ()).get("", []),
            "oldest message age": series(scrapes, "pymta_queue_oldest_message_age_seconds", ()).get("", [])},
    }


def esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def draw(board: dict, data: dict, duration: float) -> str:
    cell_w, cell_h, pad = 480, 250, 12
    rows = (len(board["panels"]) + 1) // 2
    width, height = 2 * cell_w + 3 * pad, rows * (cell_h + pad) + pad + 28
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="#f4f5f5"/>',
           f'<text x="{pad}" y="19" font-size="13">pymta dashboard: a rendering of docs/grafana/pymta.json from a '
           f'{int(duration)} s test load (rates over {WINDOW} s), not a Grafana screenshot</text>']
    for i, panel in enumerate(board["panels"]):
        x0, y0 = pad + (i % 2) * (cell_w + pad), 28 + pad + (i // 2) * (cell_h + pad)
        out.append(f'<rect x="{x0}" y="{y0}" width="{cell_w}" height="{cell_h}" fill="white" stroke="#ccc"/>')
        out.append(f'<text x="{x0 + 8}" y="{y0 + 16}" font-weight="bold">{esc(panel["title"])}</text>')
        lines = {k: v for k, v in data.get(panel["id"], {}).items() if v}
        px, py, pw, ph = x0 + 44, y0 + 26, cell_w - 56, cell_h - 100
        top = max([v for pts in lines.values() for _, v in pts] + [1e-9]) * 1.1
        out.append(f'<line x1="{px}" y1="{py + ph}" x2="{px + pw}" y2="{py + ph}" stroke="#999"/>')
        for frac in (0, 0.5, 1):
            y = py + ph - frac * ph
            out.append(f'<text x="{px - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{top * frac:.3g}</text>')
            out.append(f'<line x1="{px}" y1="{y:.1f}" x2="{px + pw}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{px + pw}" y="{py + ph + 13}" text-anchor="end" fill="#555">{int(duration)} s</text>')
        out.append(f'<text x="{px}" y="{py + ph + 13}" fill="#555">0 s</text>')
        for n, (legend, points) in enumerate(sorted(lines.items())):
            colour = COLOURS[n % len(COLOURS)]
            path = " ".join(f"{px + pw * t / duration:.1f},{py + ph - ph * v / top:.1f}" for t, v in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
            lx, ly = x0 + 8 + (n % 4) * 117, y0 + cell_h - 44 + (n // 4) * 13
            out.append(f'<rect x="{lx}" y="{ly - 8}" width="9" height="9" fill="{colour}"/>')
            out.append(f'<text x="{lx + 13}" y="{ly}">{esc(legend[:19])}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        sys.stderr.write("usage: render_dashboard.py OUT.svg [DURATION]\n")
        return 100
    duration = float(argv[1]) if len(argv) > 1 else 60.0
    with open(BOARD) as f:
        board = json.load(f)
    scrapes = collect(duration)
    with open(argv[0], "w") as f:
        f.write(draw(board, panels(scrapes), duration))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
