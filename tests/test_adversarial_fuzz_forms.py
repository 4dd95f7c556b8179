"""Junk at every form of both faces, as a flood of hostile clients would send it.

Hypothesis builds request bodies for every POST route (from the URL maps) and query
strings and path arguments for every GET route: random bytes, invalid UTF-8, fields far
over their limits, fields duplicated or missing, file parts where text is expected and
the other way round, odd or mismatched multipart boundaries, truncated bodies and wrong
content types. Two things must hold for every one of them:

* never a 500: the apps run in testing mode, so any unhandled exception fails the test;
* never a partial write: the rows of every table are counted before and after, and a
  refused request (4xx) leaves every count as it was.

``FUZZ_EXAMPLES`` sets how many bodies each test sends (``make fuzz`` sends many more).
Everything sent is invented.
"""

from __future__ import annotations

import io
import itertools
import json
import os
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from .adversarial_helpers import every_form, seeded_desk, table_counts, url_for_rule
from .intake_helpers import jpeg

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

INTAKE_FIELDS = [
    "statement",
    "when_date",
    "when_approx",
    "place",
    "place_other",
    "relation",
    "consent",
    "files",
    "contact",
    "website",
    "receipt",
    "csrf_token",
]
REVIEW_FIELDS = [
    "name",
    "password",
    "code",
    "csrf_token",
    "status",
    "reviewer",
    "note-text",
    "reply-text",
    "incident",
    "role",
    "confidence",
    "passage",
    "tag",
    "slug",
    "title_en",
    "title_ru",
    "description_en",
    "description_ru",
    "start",
    "end",
    "precision",
    "places",
    "violation_types",
    "figures",
    "figures_note",
    "sources",
    "name_en",
    "name_ru",
    "name_kk",
    "district",
    "kind",
    "lat",
    "lon",
    "label_en",
    "label_ru",
    "label_kk",
    "parent",
    "q",
    "page",
    "assigned",
    "from",
    "to",
    "language",
    "lang",
    "next",
    "mapping_error",
]
GOOD = {
    "relation": "saw",
    "consent": "counts",
    "place": "masanchi",
    "when_date": "2020-02-07",
    "status": "withdrawn",
    "role": "victim",
    "confidence": "low",
    "precision": "day",
    "reviewer": "2",
    "start": "2020-02-07",
    "figures": '{"killed": 1}',
    "lat": "43.1",
    "lon": "75.2",
    "page": "2",
    "assigned": "none",
    "from": "2020-01-01",
    "lang": "ru",
}


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (8, 8), (1, 2, 3, 4)).save(out, "PNG")
    return out.getvalue()


FILES = [
    jpeg(),
    jpeg()[:200],
    _png(),
    b"%PDF-1.4\n%%EOF\n",
    b"",
    b"ID3\x04" + bytes(300),
    b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>",
    b"<html><script>1</script></html>",
    b"PK\x03\x04" + bytes(40),
]

texts = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="жқңғүұәө <>&\"'{}%;-\u202e\u200f\x00\x07\r\n\t", max_size=300),
    st.sampled_from(
        [
            "",
            " ",
            "x" * 201,
            "ж" * 100_001,
            "1234 5678 9012 3456 7890",
            "'; DROP TABLE testimony; --",
            "{{7*7}}",
            "<script>1</script>",
            "99999999999999999999999",
            "-1",
            "²",
            "٣",
            "NaN",
            "1e309",
            "2020-02-30",
            "0000-00-00",
            "9999-12-31",
            "..",
            "/",
            "//evil.example",
        ]
    ),
).map(lambda s: s.encode("utf-8", "surrogatepass"))
raw_bytes = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"caf\xc3\x28", b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\xaf"]),
)


def values(field: str):
    good = [GOOD[field].encode()] if field in GOOD else []
    return st.one_of(st.sampled_from(good or [b""]), texts, raw_bytes, st.sampled_from(FILES))


@st.composite
def parts(draw, fields: list[str], others: list[str], receipt: str):
    """A list of (name, filename, content type, value): the form's own fields in any
    number, duplicated or missing, and some of other forms' or unknown ones."""
    names = draw(
        st.lists(
            st.one_of(
                st.sampled_from(fields),
                st.sampled_from(fields),
                st.sampled_from(others),
                texts.map(bytes.decode),
            ),
            max_size=14,
        )
    )
    out = []
    for name in names:
        filename = draw(
            st.one_of(
                st.none(),
                texts,
                raw_bytes,
                st.sampled_from(
                    [b"../../etc/passwd.jpg", b'a"; name="x', b"photo\xe2\x80\xaegpj.exe", b""]
                ),
            )
        )
        ctype = draw(
            st.one_of(
                st.none(),
                st.sampled_from(
                    [
                        b"image/jpeg",
                        b"text/html",
                        b"application/octet-stream",
                        b"multipart/mixed",
                        b"image/svg+xml",
                        b"text/plain; charset=koi8-r",
                    ]
                ),
            )
        )
        if name == "receipt":
            value = draw(st.one_of(st.just(receipt.encode()), values(name)))
        else:
            value = draw(values(name))
        out.append((name.encode("utf-8", "surrogatepass"), filename, ctype, value))
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
boundaries = st.one_of(
    st.sampled_from([b"b", b"----x", b"a'()+_,-./:=? z", b"x" * 70]),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789'()+_,-./:=? ", min_size=1, max_size=80).map(
        str.encode
    ),
)


def multipart(items, boundary: bytes) -> bytes:
    out = []
    for name, filename, ctype, value in items:
        disposition = b'Content-Disposition: form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        out.append(b"--" + boundary + b"\r\n" + disposition + b"\r\n")
        if ctype:
            out.append(b"Content-Type: " + ctype + b"\r\n")
        out.append(b"\r\n" + value + b"\r\n")
    out.append(b"--" + boundary + b"--\r\n")
    return b"".join(out)


@st.composite
def requests(draw, forms: dict[str, list[str]], receipt: str):
    """(path, content type header, body) for one of ``forms`` (action: field names):
    multipart, urlencoded, JSON, or plainly wrong."""
    path = draw(st.sampled_from(sorted(forms)))
    fields = forms[path] or ["csrf_token"]
    others = sorted({name for names in forms.values() for name in names} | {"files"})
    items = draw(parts(fields, others, receipt))
    kind = draw(st.sampled_from(["multipart", "multipart", "urlencoded", "json", "broken"]))
    if kind == "json":
        document = draw(
            st.one_of(
                st.dictionaries(st.sampled_from(fields), json_values, max_size=8), json_values
            )
        )
        return path, "application/json", json.dumps(document).encode()
    if kind == "urlencoded":
        pairs = [(n, v) for n, _f, _c, v in items]
        body = "&".join(quote(n, safe="") + "=" + quote(v, safe="") for n, v in pairs)
        return path, "application/x-www-form-urlencoded", body.encode()
    boundary = draw(boundaries)
    body = multipart(items, boundary)
    ctype = "multipart/form-data; boundary=" + boundary.decode()
    if kind == "broken":
        how = draw(
            st.sampled_from(
                [
                    "truncate",
                    "no boundary",
                    "other boundary",
                    "quoted",
                    "text/plain",
                    "json",
                    "no final",
                    "garbage",
                ]
            )
        )
        if how == "truncate":
            body = body[: draw(st.integers(0, max(len(body) - 1, 0)))]
        elif how == "no boundary":
            ctype = "multipart/form-data"
        elif how == "other boundary":
            ctype = "multipart/form-data; boundary=zz" + boundary.decode()
        elif how == "quoted":
            ctype = 'multipart/form-data; boundary="%s"' % boundary.decode()
        elif how == "text/plain":
            ctype = "text/plain"
        elif how == "json":
            ctype = "application/json"
        elif how == "no final":
            body = body[: -len(boundary) - 6]
        else:
            body = draw(st.binary(max_size=2000))
    return path, ctype, body


_addresses = itertools.count(1)


def _address() -> dict[str, str]:
    """A new client address for each request, so per-client budgets do not end the run
    early (they are tested elsewhere)."""
    n = next(_addresses)
    return {"REMOTE_ADDR": "198.51.%d.%d" % (n // 250 % 250, n % 250 + 1)}


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    seeded = seeded_desk(
        tmp_path,
        monkeypatch,
        TESTIMONY_SUBMISSIONS_PER_HOUR="1000000",
        TESTIMONY_FOLLOW_UPS_PER_HOUR="1000000",
    )
    yield seeded
    seeded.desk.close()


def _check(db, before: dict[str, int], response, where) -> dict[str, int]:
    assert response.status_code < 500, where
    after = table_counts(db)
    if response.status_code >= 400:
        changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
        assert not changed, (where, response.status_code, changed)
    return after


def test_junk_posted_to_the_witness_forms_is_refused_without_a_trace(seeded):
    db = seeded.desk.db
    app = seeded.desk.intake_app
    client = app.test_client()
    pages = {
        path: client.get(path).get_data(as_text=True)
        for lang in ("ru", "kk", "en")
        for path in ("/%s/testimony/" % lang, "/%s/receipt/" % lang)
    }
    thread = client.post("/en/receipt/", data={"receipt": seeded.receipt})
    assert thread.status_code == 200
    pages["/en/receipt/"] += thread.get_data(as_text=True)
    forms = every_form(app, pages, {"lang": "en"})
    assert {"/ru/testimony/", "/kk/receipt/", "/en/receipt/add"} <= set(forms)
    assert {"statement", "relation", "consent", "files"} <= set(forms["/ru/testimony/"])
    state = {"counts": table_counts(db)}

    @FUZZ
    @given(request=requests(forms, seeded.receipt))
    def send(request):
        path, ctype, data = request
        response = client.post(path, data=data, content_type=ctype, environ_base=_address())
        before = state["counts"]
        state["counts"] = after = _check(db, before, response, (path, ctype, data[:300]))
        if response.status_code == 200 and path.endswith("/testimony/"):
            assert b'class="code"' in response.data  # a receipt, for a whole testimony
            assert after["testimony"] == before["testimony"] + 1
            assert after["witness"] == before["witness"] + 1

    send()


def test_junk_posted_to_every_review_form_is_refused_without_a_trace(seeded):
    desk = seeded.desk
    app = desk.review_app
    admin = desk.logged_in(seeded.admin)
    anonymous = app.test_client()
    pages = {}
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and rule.endpoint != "static":
            path = url_for_rule(rule, seeded.arguments)
            page = admin.get(path)
            if page.mimetype == "text/html":
                pages[path] = page.get_data(as_text=True)
    pages["/login"] = anonymous.get("/login").get_data(as_text=True)
    forms = every_form(app, pages, seeded.arguments)
    forms.pop("/logout")
    assert len(forms) >= 15
    assert {"note-text"} <= set(forms["/testimony/1/note"])
    state = {"counts": table_counts(desk.db)}

    @FUZZ
    @given(request=requests(forms, seeded.receipt), logged_in=st.booleans())
    def send(request, logged_in):
        path, ctype, data = request
        client = admin if logged_in else anonymous
        response = client.post(path, data=data, content_type=ctype, environ_base=_address())
        state["counts"] = _check(desk.db, state["counts"], response, (path, ctype, data[:300]))
        if not logged_in and path != "/login":
            assert response.status_code == 401

    send()
    assert admin.get("/").status_code == 200  # the junk did not end the session


queries = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(REVIEW_FIELDS + INTAKE_FIELDS), st.text(max_size=20)),
        texts.map(lambda b: b.decode("utf-8", "surrogatepass")),
    ),
    max_size=8,
)
path_values = st.one_of(
    st.sampled_from(
        [
            "0",
            "1",
            "2",
            "99999999999999999999999",
            "2147483648",
            "9223372036854775808",
            "-1",
            "1.5",
            "%00",
            "..%2F..",
            "\u202e",
            "%E2%80%AE",
            "a" * 300,
        ]
    ),
    st.text(max_size=40).map(lambda s: quote(s, safe="")),
)


def test_junk_in_query_strings_and_path_arguments_of_every_page(seeded):
    desk = seeded.desk
    review = desk.logged_in(seeded.admin)
    intake = desk.intake_app.test_client()
    rules = [
        (desk.review_app, review, r)
        for r in desk.review_app.url_map.iter_rules()
        if "GET" in r.methods
    ] + [
        (desk.intake_app, intake, r)
        for r in desk.intake_app.url_map.iter_rules()
        if "GET" in r.methods
    ]
    state = {"counts": table_counts(desk.db)}

    @FUZZ
    @given(
        target=st.sampled_from(rules),
        argument=path_values,
        query=queries,
        real_arguments=st.booleans(),
    )
    def send(target, argument, query, real_arguments):
        app, client, rule = target
        arguments = dict(seeded.arguments, lang="en") if real_arguments else {}
        path = url_for_rule(rule, arguments, default=argument)
        encoded = urlencode([(k, v.encode("utf-8", "surrogatepass")) for k, v in query])
        response = client.get(path + "?" + encoded, environ_base=_address())
        state["counts"] = _check(desk.db, state["counts"], response, (path, encoded))

    send()
    assert review.get("/").status_code == 200


def test_a_nul_character_in_a_path_or_query_is_refused_on_both_faces(seeded):
    """A NUL found by the fuzzing above: PostgreSQL text cannot hold one, so a view that
    passed it on answered 500. Both faces now refuse it before any view runs."""
    desk = seeded.desk
    review = desk.logged_in(seeded.admin)
    intake = desk.intake_app.test_client()
    before = table_counts(desk.db)
    assert review.get("/incidents/%00", environ_base=_address()).status_code == 404
    assert review.get("/?q=%00", environ_base=_address()).status_code == 400
    assert review.get("/?%00=1", environ_base=_address()).status_code == 400
    assert intake.get("/en/testimony/%00", environ_base=_address()).status_code == 404
    assert intake.get("/en/testimony/?x=a%00b", environ_base=_address()).status_code == 400
    assert review.get("/incidents/", environ_base=_address()).status_code == 200  # the control
    assert table_counts(desk.db) == before
