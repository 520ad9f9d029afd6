"""Check the built documentation site as a reader's browser sees it.

Serves the site that ``mkdocs build`` wrote on the loopback address, then, for every page:
headless Chromium loads it and hands back the DOM after scripts ran (the page must render its
article: a heading and some text, no mkdocstrings error marker), and every link, image and
anchor the page points at inside the site must exist (a missing page, figure or ``#anchor``
is a broken link). It ends with a screenshot of the landing page. ``make docs-check`` runs it
after ``make docs``; it exits 1 with one line per problem, 0 when the site is clean.

    python docs/check_site.py runs/site --screenshot runs/site-check/landing.png
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


class _Page(HTMLParser):
    """Links, image sources, element ids and the visible text of one HTML document."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.headings = 0
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a and a["id"]:
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        if tag in ("a", "link") and a.get("href"):
            if tag == "a" or a.get("rel") == "stylesheet":
                self.links.append(a["href"])
        if tag in ("img", "script") and a.get("src"):
            self.links.append(a["src"])
        if tag in ("h1", "h2"):
            self.headings += 1
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.text.append(data.strip())


def _parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    return p


def _target(site: Path, page_url: str, href: str):
    """The file and fragment a site-internal ``href`` of the page at ``page_url`` points
    to; None for an external link."""
    parts = urlsplit(href)
    if parts.scheme in ("http", "https", "mailto", "data", "javascript") or parts.netloc:
        return None
    url = urlsplit(urljoin(page_url, href))
    path = unquote(url.path).lstrip("/")
    f = site / path
    if path == "" or path.endswith("/") or f.is_dir():
        f = f / "index.html"
    return f, url.fragment


def find_browser() -> str | None:
    """The first headless-capable Chromium on PATH, or None."""
    for name in BROWSERS:
        exe = shutil.which(name)
        if exe:
            return exe
    return None


def _chromium(browser: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # the browser drops connections it no longer needs (a favicon, a page already
        # rendered): not a problem of the site
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _serve(site: Path):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the check prints its own summary
        pass


def check(site, browser=None, screenshot=None) -> dict:
    """Check every page of the built site at ``site``; returns ``{"pages", "links",
    "problems", "screenshot"}``. ``browser``: a Chromium executable (None: look on PATH;
    without one the rendering check cannot run and is reported as a problem)."""
    site = Path(site)
    if not (site / "index.html").is_file():
        raise SystemExit(f"check_site: no index.html under site={str(site)!r}: run mkdocs build")
    browser = browser or find_browser()
    pages = sorted(p for p in site.rglob("index.html") if "assets" not in p.parts)
    problems: list[str] = []
    if browser is None:
        problems.append("no Chromium on PATH (apt-get install chromium): pages not rendered")
    parsed = {}
    server = _serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    n_links = 0
    try:
        for page in pages:
            rel = page.relative_to(site).parent.as_posix()
            url = "/" if rel == "." else f"/{rel}/"
            html = page.read_text(encoding="utf-8")
            static = _parse(html)
            parsed[page] = static
            if re.search(r"<blockquote>\s*(<[^>]+>\s*)*&gt;&gt;&gt;", html):
                problems.append(f"{url}: a doctest outside an Examples section renders as a quote")
            if re.search(r":(func|class|meth|mod|data|attr):(<code>|`)", html):
                problems.append(f"{url}: a Sphinx role (:func: ...) shows as text")
            if browser:
                res = _chromium(browser, "--dump-dom", base + url.lstrip("/"))
                dom = _parse(res.stdout)
                if res.returncode != 0 or dom.headings == 0 or len(" ".join(dom.text)) < 40:
                    problems.append(f"{url}: did not render (exit {res.returncode})")
                if "ERROR" in res.stdout and "mkdocstrings" in res.stdout:
                    problems.append(f"{url}: a mkdocstrings error is on the page")
            for href in static.links:
                tgt = _target(site, url, href)
                if tgt is None:
                    continue
                n_links += 1
                f, frag = tgt
                if not f.is_file():
                    problems.append(f"{url}: broken link {href!r} (no {f.relative_to(site)})")
                    continue
                if frag and f.suffix == ".html":
                    ids = parsed.get(f)
                    if ids is None:
                        ids = parsed[f] = _parse(f.read_text(encoding="utf-8"))
                    if frag not in ids.ids:
                        problems.append(f"{url}: broken anchor {href!r}")
        shot = None
        if browser and screenshot:
            shot = Path(screenshot)
            shot.parent.mkdir(parents=True, exist_ok=True)
            res = _chromium(
                browser, f"--screenshot={shot.resolve()}", "--window-size=1280,900", base
            )
            if res.returncode != 0 or not shot.is_file() or shot.stat().st_size == 0:
                problems.append(f"landing page: no screenshot (exit {res.returncode})")
    finally:
        server.shutdown()
    return {
        "pages": len(pages),
        "links": n_links,
        "problems": problems,
        "screenshot": None if shot is None else str(shot),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("site", nargs="?", default="runs/site", help="the built site (mkdocs site_dir)")
    p.add_argument("--screenshot", default="runs/site-check/landing.png")
    p.add_argument("--browser", default=None, help="Chromium executable (default: on PATH)")
    p.add_argument("--json", default=None, help="also write the result here")
    a = p.parse_args(argv)
    res = check(a.site, a.browser, a.screenshot)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    for line in res["problems"]:
        print(f"check_site: {line}", file=sys.stderr)
    print(
        f"check_site: {res['pages']} pages rendered, {res['links']} internal links checked, "
        f"{len(res['problems'])} problems; screenshot {res['screenshot']}"
    )
    return 1 if res["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
