"""Every intake page, in every language, in a real browser: accessible, light, neutral.

One walk per language through every kind of page a witness can meet (welcome, form,
form with errors, receipt and its page for print, follow-up login, follow-up with a
reply, the "leave quickly" page, not found, too large, and the two pages of a server
whose hourly budget is spent), in Debian's chromium against gunicorn. On each page:

- axe-core (from the npm registry, injected by Playwright) finds no serious or critical
  violation; every violation found is printed with its nodes;
- everything the browser downloads for it (HTML, CSS, images) is under 60 KB;
- the title is the configured neutral title, never the service's purpose;
- a "leave quickly" link is on it, and it loads no script, font or SVG.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from .witness_site import (
    AXE,
    LANGUAGES,
    PAGE_NAMES,
    new_page,
    open_browser,
    start_site,
    visit_every_page,
)

pytestmark = pytest.mark.browser

TITLE = "Рецепты бабушки"  # a configured neutral title ("Grandma's recipes")
MAX_PAGE_BYTES = 60 * 1024
LEAVE_TEXT = {"ru": "Быстро уйти", "kk": "Тез кету", "en": "Leave quickly"}
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.html + '\\n      ' + (n.failureSummary || '').replace(/\\n/g, ' '))
  }));
}"""


@dataclass
class Seen:
    """What one page was, as the browser got it."""

    url: str
    status: int
    title: str
    lang: str
    bytes: int
    resources: list[tuple[str, str, str]]  # (resource type, content type, url)
    leave_links: list[str]
    scripts: int
    svgs: int
    violations: list[dict] = field(default_factory=list)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[object]:
    with start_site(tmp_path_factory.mktemp("witness-pages"), TESTIMONY_PAGE_TITLE=TITLE) as s:
        yield s


@pytest.fixture(scope="module")
def walks(site) -> dict[str, dict[str, Seen]]:
    """Every page in every language, with axe's findings on each."""
    if not AXE.is_file():
        pytest.skip(
            "axe-core is not in tests/.node (`make test` fetches it with npm; "
            "npm is missing or could not reach the registry)"
        )
    seen: dict[str, dict[str, Seen]] = {}
    with open_browser() as browser:
        for lang in LANGUAGES:
            # Script is on only so axe can run (the pages have none); CSP is bypassed for
            # the same reason: the pages' own policy forbids every script.
            page = new_page(browser, java_script_enabled=True, bypass_csp=True)
            responses: list = []

            def record(response, page=page, responses=responses) -> None:
                if response.request.is_navigation_request() and response.frame == page.main_frame:
                    responses.clear()
                responses.append(response)

            page.on("response", record)
            seen[lang] = {}
            for name in visit_every_page(page, site, lang):
                seen[lang][name] = _look(page, responses)
            page.context.close()
    return seen


def _transferred(response) -> int:
    sizes = response.request.sizes()
    wire = sizes["responseBodySize"] + sizes["responseHeadersSize"]
    try:
        body = len(response.body())
    except Exception:  # a redirect has no body
        body = 0
    return max(wire, body)


def _look(page, responses: list) -> Seen:
    document = responses[0] if responses else None
    seen = Seen(
        url=page.url,
        status=document.status if document else 0,
        title=page.title(),
        lang=page.locator("html").get_attribute("lang") or "",
        bytes=sum(_transferred(r) for r in responses),
        resources=[
            (r.request.resource_type, r.headers.get("content-type", ""), r.url) for r in responses
        ],
        leave_links=[a.get_attribute("href") or "" for a in page.locator("a.leave").all()],
        scripts=page.locator("script").count(),
        svgs=page.locator("svg, img[src$='.svg'], object, embed").count(),
    )
    page.add_script_tag(path=str(AXE))
    seen.violations = page.evaluate(RUN_AXE)
    return seen


def _each(walks) -> Iterator[tuple[str, str, Seen]]:
    for lang, pages in walks.items():
        for name, seen in pages.items():
            yield lang, name, seen


def test_the_walk_meets_every_kind_of_page(walks) -> None:
    for lang in LANGUAGES:
        assert tuple(walks[lang]) == PAGE_NAMES
        statuses = {name: seen.status for name, seen in walks[lang].items()}
        assert statuses == {
            "welcome": 200,
            "form": 200,
            "form with errors": 400,
            "receipt": 200,
            "receipt for print": 200,
            "follow-up login": 200,
            "follow-up with replies": 200,
            "leave": 200,
            "not found": 404,
            "too large": 413,
            "busy form": 429,
            "too many": 429,
        }, lang
        assert {seen.lang for seen in walks[lang].values()} == {lang}


def test_every_page_has_no_serious_accessibility_violation(walks) -> None:
    serious = []
    for lang, name, seen in _each(walks):
        for violation in seen.violations:
            print(
                "%s / %s: [%s] %s: %s"
                % (lang, name, violation["impact"], violation["id"], violation["help"])
            )
            for node in violation["nodes"]:
                print("    " + node)
            if violation["impact"] in ("serious", "critical"):
                serious.append((lang, name, violation["id"]))
    assert serious == []


def test_every_page_weighs_under_60_kb(walks) -> None:
    for lang, name, seen in _each(walks):
        print("%s / %s: %d bytes in %d responses" % (lang, name, seen.bytes, len(seen.resources)))
        assert 0 < seen.bytes < MAX_PAGE_BYTES, (lang, name, seen.resources)


def test_pages_load_no_script_font_image_or_svg(walks) -> None:
    for lang, name, seen in _each(walks):
        kinds = {kind for kind, _type, _url in seen.resources}
        assert kinds <= {"document", "stylesheet"}, (lang, name, seen.resources)
        assert not any("svg" in content_type for _kind, content_type, _url in seen.resources)
        assert seen.scripts == 0 and seen.svgs == 0, (lang, name)
        assert all(url.startswith("http://127.0.0.1:") for _k, _t, url in seen.resources)


def test_every_title_is_the_configured_neutral_title(walks) -> None:
    titles = {(lang, name): seen.title for lang, name, seen in _each(walks)}
    assert set(titles.values()) == {TITLE}, titles


def test_every_page_but_the_neutral_one_has_a_leave_quickly_link(walks, site) -> None:
    for lang, name, seen in _each(walks):
        if name == "leave":
            assert seen.leave_links == []  # the neutral page shows nothing of the service
            continue
        assert len(seen.leave_links) == 1, (lang, name)
        assert seen.leave_links[0].endswith("/notes"), (lang, name, seen.leave_links)
