"""The site checker (docs/check_site.py) finds what it is there to find: a broken link, a
missing image, a missing anchor; and passes a page whose links all resolve."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "check_site.py"


@pytest.fixture(scope="module")
def site_check():
    spec = importlib.util.spec_from_file_location("check_site", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _page(path: Path, body: str):
    path.mkdir(parents=True, exist_ok=True)
    (path / "index.html").write_text(
        f"<html><body><h1 id='top'>Title</h1><p>{'words ' * 20}</p>{body}</body></html>"
    )


def _site(tmp_path, body):
    site = tmp_path / "site"
    _page(site, body)
    _page(site / "guide", "<h2 id='part'>Part</h2>")
    (site / "figures").mkdir()
    (site / "figures" / "a.png").write_bytes(b"png")
    return site


def _link_problems(res):
    return [p for p in res["problems"] if "Chromium" not in p]


def test_clean_site_passes_the_link_check(site_check, tmp_path):
    body = (
        "<a href='guide/'>g</a> <a href='guide/#part'>p</a> <a href='#top'>t</a>"
        "<img src='figures/a.png'> <a href='https://example.org/x'>ext</a>"
    )
    res = site_check.check(_site(tmp_path, body), browser=None, screenshot=None)
    assert res["pages"] == 2 and res["links"] == 4
    assert _link_problems(res) == []


@pytest.mark.parametrize(
    "body, what",
    [
        ("<a href='missing/'>m</a>", "broken link"),
        ("<img src='figures/b.png'>", "broken link"),
        ("<a href='guide/#nowhere'>n</a>", "broken anchor"),
        ("<blockquote><p>&gt;&gt;&gt; f(1)</p></blockquote>", "doctest outside an Examples"),
        ("<p>:func:<code>moments</code></p>", "Sphinx role"),
    ],
)
def test_broken_targets_and_rendering_slips_are_reported(site_check, tmp_path, body, what):
    res = site_check.check(_site(tmp_path, body), browser=None, screenshot=None)
    problems = _link_problems(res)
    assert len(problems) == 1 and what in problems[0]


def test_pages_render_in_chromium(site_check, tmp_path):
    browser = site_check.find_browser()
    if browser is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium)")
    site = _site(tmp_path, "<a href='guide/'>g</a>")
    res = site_check.check(site, browser=browser, screenshot=tmp_path / "shot.png")
    assert res["problems"] == []
    assert (tmp_path / "shot.png").stat().st_size > 1000
