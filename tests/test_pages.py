"""Pages for people (server/blueprints/pages.py): search and a neuron's page, HTML errors for browsers.

A small dataset with a graph (four slabs of labels, agglomerated {1,2} and {3,4}), tags added and a
merge made through the API as a proofreader would; the pages are read as HTML (what a person sees
is checked in the text), and once in Chromium, used as a person would."""

from __future__ import annotations

import datetime
import re
from html import unescape

import numpy as np
import pytest

from tests.helpers import add_cg_dataset, proofreader_token

ROLE_HEADERS = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # a browser's


@pytest.fixture
def graph_app(settings, small_volumes, tmp_path):
    """Dataset `cg` with a graph over uint32 labels (as labs store them): neurons {1,2} and {3,4}; a
    proofreader's token; tags on both neurons."""
    from server import create_app

    app = create_app(settings)
    add_cg_dataset(settings.database_url, small_volumes["image"], tmp_path, dtype=np.uint32)
    app.token = proofreader_token(settings.database_url, "cg")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {app.token}"}
    for position, term in (([2, 2, 2], "L2/3 pyramidal"), ([26, 2, 2], "astrocyte"), ([10, 2, 2], "pyramidal")):
        answer = client.post("/api/v1/datasets/cg/tags", json={"position": position, "term": term}, headers=auth)
        assert answer.status_code == 201, answer.get_json()
    return app


def text_of(html: str) -> str:
    """What a person reads: the page without its tags, scripts and styles, spaces folded."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def roots_of(client, svs):
    answer = client.post("/segmentation/api/v1/table/cg/roots", json={"node_ids": [str(s) for s in svs]})
    return [int(r) for r in answer.get_json()["root_ids"]]


def test_search_finds_neurons_by_type_with_their_tags_size_and_facets(graph_app):
    from segmentation.graph.ids import supervoxel_ids

    client = graph_app.test_client()
    page = client.get("/search?q=pyramidal", headers=ROLE_HEADERS)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    text = text_of(html)
    first, third = roots_of(client, supervoxel_ids(np.array([1, 3], dtype=np.uint64)))
    assert "1 neuron " in text  # labels 1 and 2 are one neuron, tagged twice (a type and its subtype)
    row = re.search(rf'<tr data-root="{first}">(.*?)</tr>', html, re.S).group(1)
    assert "L2/3 pyramidal, pyramidal" in text_of(row) and "2 supervoxels" in text_of(row)
    assert re.search(r"L2/3 pyramidal by tester, \d{4}-\d\d-\d\d", text_of(row))
    assert f'href="/datasets/cg/neurons/{first}"' in row and 'href="/at/cg/' in row
    assert f'data-root="{third}"' not in html  # the astrocyte is not a pyramidal cell
    facets = re.search(r'id="facet-types">(.*?)</section>', html, re.S).group(1)
    assert re.findall(r"<title>([^<]+)</title>", facets) == ["L2/3 pyramidal: 1", "pyramidal: 1"]

    both = text_of(client.get("/search?q=pyramidal OR astrocyte", headers=ROLE_HEADERS).get_data(as_text=True))
    assert "2 neurons" in both
    api = client.get("/api/v1/search?q=pyramidal OR astrocyte").get_json()
    assert sorted(int(hit["root_id"]) for hit in api["results"]) == sorted([first, third])
    assert {hit["supervoxels"] for hit in api["results"]} == {2}
    assert all(tag["user"] == "tester" for hit in api["results"] for tag in hit["tags"])


def test_type_facets_count_every_matched_neuron_not_only_the_page(graph_app):
    """The facet counts equal a brute-force count over all results (paged one per page)."""
    from segmentation.celltypes.query import parse
    from segmentation.celltypes.search import search
    from server.blueprints import cell_tags, vocabulary_of

    with graph_app.app_context():
        query = parse("pyramidal OR astrocyte")
        first = search(cell_tags(), query, vocabulary_of, ["cg"], page=1, per_page=1)
        every = [search(cell_tags(), query, vocabulary_of, ["cg"], page=n, per_page=1).hits for n in (1, 2)]
    brute: dict[str, int] = {}
    for hits in every:
        for hit in hits:
            for term in hit.terms:
                brute[term] = brute.get(term, 0) + 1
    assert len(first.hits) == 1 and first.type_counts == brute == {"L2/3 pyramidal": 1, "astrocyte": 1, "pyramidal": 1}


def test_search_page_is_honest_when_empty_wrong_or_unmatched(app):
    client = app.test_client()
    empty = text_of(client.get("/search", headers=ROLE_HEADERS).get_data(as_text=True))
    assert "No neurons are tagged yet" in empty and "axonlink tags import" in empty
    wrong = client.get("/search?q=" + "(" * 3, headers=ROLE_HEADERS)
    assert wrong.status_code == 400 and wrong.mimetype == "text/html"
    nothing = text_of(client.get("/search?q=astrocyte", headers=ROLE_HEADERS).get_data(as_text=True))
    assert "No neuron matches astrocyte" in nothing
    unknown = client.get("/search?q=astrocite", headers=ROLE_HEADERS)  # a typo: said on the page, form kept
    assert unknown.status_code == 400 and 'id="q"' in unknown.get_data(as_text=True)
    assert "astrocite" in text_of(unknown.get_data(as_text=True))
    for page in ("\u00b2", "1" * 5000, "0", "-1", "x"):  # never a 500
        answer = client.get("/search", query_string={"q": "astrocyte", "page": page}, headers=ROLE_HEADERS)
        assert answer.status_code == 400 and "page must be a whole number" in answer.get_data(as_text=True)


def test_a_page_past_the_last_is_refused_on_the_page(graph_app):
    answer = graph_app.test_client().get("/search?q=astrocyte&page=7", headers=ROLE_HEADERS)
    assert answer.status_code == 400
    assert "page 7 is past the last page of these results (1)" in text_of(answer.get_data(as_text=True))


def test_a_neurons_page_shows_its_status_tags_and_the_edits_that_made_it(graph_app):
    from segmentation.graph.ids import supervoxel_ids

    client = graph_app.test_client()
    first, third = roots_of(client, supervoxel_ids(np.array([1, 3], dtype=np.uint64)))
    before = text_of(client.get(f"/datasets/cg/neurons/{first}", headers=ROLE_HEADERS).get_data(as_text=True))
    assert "Current" in before and "2 supervoxels" in before and "No edits" in before
    assert "L2/3 pyramidal, pyramidal" in before and "in force" in before

    merged = client.post(
        "/segmentation/api/v1/table/cg/merge",
        json=[
            [str(supervoxel_ids(np.array([2], dtype=np.uint64))[0]), 60, 8, 40],
            [str(supervoxel_ids(np.array([3], dtype=np.uint64))[0]), 100, 8, 40],
        ],
        headers={"Authorization": f"Bearer {graph_app.token}"},
    )
    assert merged.status_code == 200, merged.get_json()
    (now,) = roots_of(client, supervoxel_ids(np.array([1], dtype=np.uint64)))
    old = client.get(f"/datasets/cg/neurons/{first}", headers=ROLE_HEADERS).get_data(as_text=True)
    assert "Edited since" in text_of(old) and f'href="/datasets/cg/neurons/{now}"' in old
    new_page = client.get(f"/datasets/cg/neurons/{now}", headers=ROLE_HEADERS).get_data(as_text=True)
    text = text_of(new_page)
    assert "Current" in text and "4 supervoxels" in text and "merge" in text and "tester" in text
    assert f'href="/datasets/cg/neurons/{first}"' in new_page and f'href="/datasets/cg/neurons/{third}"' in new_page
    assert "astrocyte" in text  # tags follow the neuron
    viewer = re.search(r'id="open-now" href="([^"]+)"', new_page).group(1)
    assert viewer.startswith("/#!") and str(now) in unescape(viewer).replace("%22", '"')


def test_the_changes_page_reviews_every_operation_per_person_and_day_with_before_and_after(graph_app, settings):
    import json
    from urllib.parse import unquote

    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids

    svs = [int(s) for s in supervoxel_ids(np.array([1, 2, 3, 4], dtype=np.uint64))]
    graph = Graph.open(settings.database_url, "cg")
    merged = graph.merge(svs[1], svs[2], user="alice")
    split = graph.split([svs[0]], [svs[3]], user="bob")
    again = graph.merge(svs[0], svs[3], user="alice")
    client = graph_app.test_client()
    html = client.get("/datasets/cg/changes", headers=ROLE_HEADERS).get_data(as_text=True)  # the last 7 days
    text = text_of(html)
    assert "3 operations: 2 merges, 1 split, 0 undo/redo, by 2 people" in text
    users = text_of(re.search(r'id="per-user">(.*?)</section>', html, re.S).group(1))
    assert "alice 2 0 0 2" in users and "bob 0 1 0 1" in users
    rows = re.findall(r'<tr data-operation="(\d+)">(.*?)</tr>', html, re.S)
    assert [int(n) for n, _ in rows] == [again.operation_id, split.operation_id, merged.operation_id]  # newest first
    newest = rows[0][1]
    assert all(f"/neurons/{root}" in newest for root in again.old_root_ids + again.new_root_ids)
    state = json.loads(unquote(re.search(r'class="compare" href="/#!([^"]+)"', newest).group(1)))
    before, after = (layer for layer in state["layers"] if layer["type"] == "segmentation")
    made = graph.operation_time(again.operation_id).timestamp()
    assert before["source"].endswith(f"/data/cg@{made - 1e-6:.6f}/segmentation")
    assert after["source"].endswith(f"/data/cg@{made:.6f}/segmentation")
    assert sorted(before["segments"]) == sorted(str(r) for r in again.old_root_ids)
    assert after["segments"] == [str(r) for r in again.new_root_ids]
    assert [child["layers"][-1] for child in state["layout"]["children"]] == [before["name"], after["name"]]
    # the pinned sources answer those moments' roots: the neuron before the merge is not the one after
    pinned = client.get(f"/data/cg@{made - 1e-6:.6f}/segmentation/info")
    assert pinned.status_code == 200
    (now,) = graph.roots([svs[0]])
    most = text_of(re.search(r'id="most-edited">(.*?)</section>', html, re.S).group(1))
    assert f"{now} — 3 operations" in most  # every listed operation made a part of today's neuron

    bob = text_of(client.get("/datasets/cg/changes?user=bob", headers=ROLE_HEADERS).get_data(as_text=True))
    assert "1 operation: 0 merges, 1 split" in bob
    before_all = client.get("/datasets/cg/changes?until=2000-01-01T00:00:00Z", headers=ROLE_HEADERS)
    assert "No edits between" in text_of(before_all.get_data(as_text=True))
    for bad in ("since=yesterday", "since=2026-12-02&until=2026-12-01", "user=" + "x" * 300):
        answer = client.get(f"/datasets/cg/changes?{bad}", headers=ROLE_HEADERS)
        assert answer.status_code == 400 and answer.mimetype == "text/html", bad


def test_errors_are_pages_for_browsers_and_json_for_api_clients(graph_app):
    client = graph_app.test_client()
    page = client.get("/datasets/cg/neurons/12345", headers=ROLE_HEADERS)
    assert page.status_code == 404 and page.mimetype == "text/html"
    text = text_of(page.get_data(as_text=True))
    assert "404 · Not Found" in text and "12345 is not a neuron of cg" in text and "Request id" in text
    assert "Accept" in [v.strip() for v in page.headers["Vary"].split(",")]
    for accept in ("*/*", "application/json", "application/json, text/html;q=0.5"):
        answer = client.get("/datasets/cg/neurons/12345", headers={"Accept": accept})
        assert (
            answer.status_code == 404
            and answer.get_json()["message"] == "12345 is not a neuron of cg (neither now nor before)"
        )
    missing = client.get("/datasets/nope/neurons/1", headers=ROLE_HEADERS)
    assert missing.status_code == 404 and "no dataset named 'nope'" in text_of(missing.get_data(as_text=True))


def test_private_datasets_stay_invisible_on_the_pages(graph_app, settings):
    from segmentation.access import Accounts
    from segmentation.access.accounts import forget_cached_access

    client = graph_app.test_client()
    Accounts(settings.database_url).set_public("cg", False)
    forget_cached_access()
    search = text_of(client.get("/search?q=astrocyte", headers=ROLE_HEADERS).get_data(as_text=True))
    assert "No neuron matches" in search
    hidden = client.get("/datasets/cg/neurons/1", headers=ROLE_HEADERS)
    unknown = client.get("/datasets/nope/neurons/1", headers=ROLE_HEADERS)
    assert hidden.status_code == unknown.status_code == 404  # as if there were no such dataset
    assert "no dataset named 'cg'" in text_of(hidden.get_data(as_text=True))
    holder = {"Authorization": f"Bearer {graph_app.token}", **ROLE_HEADERS}
    assert "1 neuron" in text_of(client.get("/search?q=astrocyte", headers=holder).get_data(as_text=True))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_person_searches_as_they_type_opens_a_neuron_and_then_the_viewer(graph_app, browser):
    from segmentation.graph.ids import supervoxel_ids
    from server.runner import BackgroundServer
    from tests.browser import SCREENSHOTS, VIEWPORT, page_errors, wait_until

    client = graph_app.test_client()
    (first,) = roots_of(client, supervoxel_ids(np.array([1], dtype=np.uint64)))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with BackgroundServer(graph_app) as server:
        page = browser.new_page(viewport=VIEWPORT)
        errors = page_errors(page)
        page.goto(server.url + "/search")
        assert "No neurons" not in page.inner_text("#results")  # tags exist: examples, not the empty state
        page.fill("#q", "pyramid")  # typed, not submitted
        page.type("#q", "al")
        assert wait_until(page, lambda: page.locator("#hits tbody tr").count() == 1)
        assert page.url.endswith("/search?q=pyramidal")  # the address can be shared
        assert "L2/3 pyramidal, pyramidal" in page.inner_text("#hits")
        page.screenshot(path=str(SCREENSHOTS / "page-search.png"), full_page=True)
        page.click(f'#hits a.neuron:text("{first}")')
        page.wait_for_url(f"**/datasets/cg/neurons/{first}")
        assert page.inner_text("#status").startswith("Current")
        assert "2 supervoxels" in page.inner_text("#facts")
        page.screenshot(path=str(SCREENSHOTS / "page-neuron.png"), full_page=True)
        page.click("#open-now")
        assert wait_until(page, lambda: "/v/" in page.url)
        assert wait_until(page, lambda: str(first) in page.evaluate("decodeURIComponent(location.hash)"))
        page.goto(server.url + "/datasets/cg/neurons/99", wait_until="load")
        assert "404" in page.inner_text("#error-title")

        # a day of proofreading reviewed: the operation's before and after side by side in the viewer
        from segmentation.graph import Graph

        two, three = (int(s) for s in supervoxel_ids(np.array([2, 3], dtype=np.uint64)))
        done = Graph.open(graph_app.config["AXONLINK_SETTINGS"].database_url, "cg").merge(two, three, user="trainee")
        page.goto(server.url + "/datasets")
        page.click("a.changes")
        page.wait_for_selector(f'tr[data-operation="{done.operation_id}"]')
        assert "1 operation: 1 merge" in page.inner_text("#summary")
        page.screenshot(path=str(SCREENSHOTS / "page-changes.png"), full_page=True)
        page.click(f'tr[data-operation="{done.operation_id}"] a.compare')
        page.wait_for_function("typeof window.viewer !== 'undefined' && window.viewer.isReady()", timeout=30_000)
        shown = page.evaluate("viewer.state.toJSON()")
        assert shown["layout"]["type"] == "row"
        names = [layer["name"] for layer in shown["layers"]]
        assert f"before {done.operation_id}" in names and f"after {done.operation_id}" in names

        # signing in from a page returns to it; a #token link pasted into the open sign-in page works
        page.goto(server.url + "/search?q=pyramidal")
        assert page.locator("#sign-out").count() == 0  # "Sign out" only when signed in
        page.click("#sign-in")
        assert wait_until(page, lambda: "/login?next=" in page.url), page.url
        page.evaluate("token => { location.hash = 'token=' + token; }", graph_app.token)
        page.wait_for_url("**/search?q=pyramidal")
        assert page.inner_text("#signed-in-user") == "tester"
        assert graph_app.token not in page.url
        page.click("#sign-out")
        assert wait_until(page, lambda: page.locator("#sign-in").count() == 1)
        # "next" never leads off the site, however it is spelled (browsers drop tabs, read \ as /)
        for away in ("%2F%09%2Fevil.example%2F", "%2F%5Cevil.example", "https%3A%2F%2Fevil.example%2F"):
            page.goto(f"{server.url}/login?next={away}#token={graph_app.token}")
            assert wait_until(page, lambda: "/login" not in page.url)
            assert page.url.startswith(server.url + "/"), page.url
            page.evaluate("fetch('/api/v1/session', {method: 'DELETE'})")
        assert not [e for e in errors if "404" not in e], errors
        page.close()


def test_proofreaders_see_undo_and_redo_on_a_neurons_page_and_others_do_not(graph_app, settings):
    from segmentation.access import Accounts
    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids

    client = graph_app.test_client()
    two, three = (int(s) for s in supervoxel_ids(np.array([2, 3], dtype=np.uint64)))
    graph = Graph.open(settings.database_url, "cg")
    first = graph.root(two)
    done = graph.merge(two, three, user="trainee")
    (merged,) = done.new_root_ids
    viewer = Accounts(settings.database_url).role_token("vic", "cg", "viewer", by="tests")
    for headers in ({}, {"Authorization": f"Bearer {viewer}"}):
        page = client.get(f"/datasets/cg/neurons/{merged}", headers={**ROLE_HEADERS, **headers}).get_data(as_text=True)
        assert "take-back" not in page and "Undo" not in text_of(page)
    proofreader = {"Authorization": f"Bearer {graph_app.token}", **ROLE_HEADERS}
    page = client.get(f"/datasets/cg/neurons/{merged}", headers=proofreader).get_data(as_text=True)
    assert f'data-action="undo" data-operation="{done.operation_id}"' in page
    retired = client.get(f"/datasets/cg/neurons/{first}", headers=proofreader).get_data(as_text=True)
    assert f"Retired by operation {done.operation_id} (merge)" in text_of(retired) and "by trainee" in text_of(retired)
    undone = graph.undo(done.operation_id, user="lead")
    page = client.get(f"/datasets/cg/neurons/{merged}", headers=proofreader).get_data(as_text=True)
    assert f"Retired by operation {undone.operation_id} (undo of operation {done.operation_id})" in text_of(page)
    assert f'data-action="redo" data-operation="{done.operation_id}"' in page


def test_a_proofreader_undoes_a_merge_from_the_neurons_page_and_redoes_it(graph_app, browser, settings):
    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids
    from server.runner import BackgroundServer
    from tests.browser import SCREENSHOTS, VIEWPORT, page_errors, wait_until

    two, three = (int(s) for s in supervoxel_ids(np.array([2, 3], dtype=np.uint64)))
    graph = Graph.open(settings.database_url, "cg")
    before = sorted({graph.root(two), graph.root(three)})
    done = graph.merge(two, three, user="trainee")
    (merged,) = done.new_root_ids
    with BackgroundServer(graph_app) as server:
        page = browser.new_page(viewport=VIEWPORT)
        errors = page_errors(page)
        page.goto(f"{server.url}/login?next=/datasets/cg/neurons/{merged}#token={graph_app.token}")
        page.wait_for_url(f"**/datasets/cg/neurons/{merged}")
        page.click(f'#edits button[data-operation="{done.operation_id}"]')
        assert wait_until(page, lambda: page.locator("#retired").count() == 1)
        assert "Edited since" in page.inner_text("#status")
        graph.sync()
        apart = sorted({graph.root(two), graph.root(three)})
        assert len(apart) == 2 and apart != before  # taken back: two neurons again, new roots
        assert [int(a.inner_text()) for a in page.locator("a.became").all()] == apart
        page.click("#retired button")  # redo: one neuron again, its page shown
        assert wait_until(page, lambda: "/neurons/" in page.url and f"/neurons/{merged}" not in page.url)
        graph.sync()
        again = graph.root(two)
        assert again == graph.root(three) and page.url.endswith(f"/neurons/{again}")
        assert page.inner_text("#status").startswith("Current")
        assert page.locator("#lineage a.lineage-node").count() >= 3  # what it was made of, drawn
        page.screenshot(path=str(SCREENSHOTS / "page-neuron-edits.png"), full_page=True)
        page.click(f'#lineage a.lineage-node[data-root="{merged}"]')  # the lineage leads to its past
        page.wait_for_url(f"**/neurons/{merged}")
        page.goto(f"{server.url}/datasets/cg/neurons/{merged}")  # a second redo of the same is refused, said
        page.click("#retired button")
        assert wait_until(page, lambda: page.locator("#problem").is_visible())
        assert "already" in page.inner_text("#problem")
        assert not [e for e in errors if "400" not in e and "409" not in e], errors
        page.close()


def test_a_datasets_page_gives_its_facts_counts_citation_and_snippets(graph_app, settings, small_volumes):
    from segmentation.datasets import Datasets
    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids

    Datasets(settings.database_url).update(
        "cg",
        {"citation": "Doe et al. (2026) A_cortex & {more}, doi:10.1234/ax.5_6. \\", "license": "CC-BY-4.0"},
        by="t",
    )
    client = graph_app.test_client()
    page = client.get("/datasets/cg", headers=ROLE_HEADERS)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    text = text_of(html)
    assert "Neurons now 2" in text and "Supervoxels 4" in text and "Edits 0" in text and "Tagged neurons 2" in text
    types = re.findall(r"<title>([^<]+)</title>", html.split('id="per-type"')[1].split("</section>")[0])
    assert sorted(types) == ["L2/3 pyramidal: 1", "astrocyte: 1", "pyramidal: 1"], types
    assert "No edits yet" in text and "CC-BY-4.0" in text
    bibtex = unescape(re.search(r'<pre id="citation-bibtex" class="cite">(.*?)</pre>', html, re.S).group(1))
    assert bibtex.startswith("@misc{cg,") and "doi = {10.1234/ax.5_6}" in bibtex
    assert r"note = {Doe et al. (2026) A\_cortex \& \{more\}, doi:10.1234/ax.5\_6. \textbackslash{}}" in bibtex
    bare = bibtex.replace(r"\{", "").replace(r"\}", "")  # braces that group, not escaped ones
    assert bare.count("{") == bare.count("}")
    assert 'CloudVolume("http://localhost/data/cg/segmentation"' in unescape(html)
    assert 'CAVEclient("cg", server_address="http://localhost"' in unescape(html)
    assert 'id="admin"' not in html  # not for a proofreader
    two, three = (int(s) for s in supervoxel_ids(np.array([2, 3], dtype=np.uint64)))
    Graph.open(settings.database_url, "cg").merge(two, three, user="trainee")
    html = client.get("/datasets/cg", headers=ROLE_HEADERS).get_data(as_text=True)
    assert "Neurons now 1" in text_of(html) and "Edits 1" in text_of(html)
    week = re.findall(r"<title>([^<]+)</title>", html.split('id="per-week"')[1].split("</section>")[0])
    monday = datetime.date.today() - datetime.timedelta(days=datetime.date.today().weekday())
    assert week == [f"{monday.isoformat()}: 1"]
    # a dataset without a graph says what it is; the datasets page links every dataset's page
    Datasets(settings.database_url).add(
        "small", image=small_volumes["image"], segmentation=small_volumes["segmentation"]
    )
    plain = text_of(client.get("/datasets/small", headers=ROLE_HEADERS).get_data(as_text=True))
    assert "served as stored" in plain and "Neurons now" not in plain
    assert 'href="/datasets/cg"' in client.get("/datasets", headers=ROLE_HEADERS).get_data(as_text=True)


def test_a_datasets_page_shows_admin_tools_to_its_admins_only_and_private_ones_to_no_stranger(graph_app, settings):
    from segmentation.access import Accounts

    accounts = Accounts(settings.database_url)
    admin = accounts.role_token("ada", "cg", "admin", by="tests")
    client = graph_app.test_client()
    page = client.get("/datasets/cg", headers={**ROLE_HEADERS, "Authorization": f"Bearer {admin}"})
    html = page.get_data(as_text=True)
    assert 'id="admin"' in html and "<td>tester</td><td>proofreader</td>" in html
    assert "private" in page.headers["Cache-Control"]  # what it shows depends on who asks
    accounts.set_public("cg", False, by="tests")
    accounts.add_user("otto", by="tests")  # signed in, no role on cg
    stranger = accounts.create_token("otto", by="tests")[1]
    for headers in ({}, {"Authorization": f"Bearer {stranger}"}):
        hidden = client.get("/datasets/cg", headers={**ROLE_HEADERS, **headers})
        missing = client.get("/datasets/no-such", headers={**ROLE_HEADERS, **headers})
        assert hidden.status_code == missing.status_code == 404  # private and unknown: one answer
        assert "cg" not in text_of(hidden.get_data(as_text=True)).replace("no dataset named 'cg'", "")
    seen = client.get("/datasets/cg", headers={**ROLE_HEADERS, "Authorization": f"Bearer {graph_app.token}"})
    assert seen.status_code == 200 and "(private)" in seen.get_data(as_text=True)


def test_an_admin_edits_a_dataset_and_grants_a_role_from_its_page(graph_app, browser, settings):
    from segmentation.access import Accounts
    from server.runner import BackgroundServer
    from tests.browser import SCREENSHOTS, VIEWPORT, page_errors, wait_until

    accounts = Accounts(settings.database_url)
    admin = accounts.role_token("ada", "cg", "admin", by="tests")
    accounts.add_user("newcomer", by="tests")
    with BackgroundServer(graph_app) as server:
        page = browser.new_page(viewport=VIEWPORT)
        errors = page_errors(page)
        page.goto(f"{server.url}/login?next=/datasets#token={admin}")
        page.wait_for_url("**/datasets")
        page.click('a.dataset-page:text("cg")')
        page.wait_for_url("**/datasets/cg")
        assert page.inner_text("#neurons") == "2" and page.inner_text("#supervoxels") == "4"
        page.fill('#settings textarea[name="description"]', "Mouse V1, layer 2/3, proofread")
        page.fill('#settings input[name="license"]', "CC-BY-4.0")
        page.click("#settings button")
        assert wait_until(page, lambda: page.locator("#description").count() == 1)
        assert page.inner_text("#description") == "Mouse V1, layer 2/3, proofread"
        assert page.inner_text("#license") == "CC-BY-4.0"
        assert "Mouse V1" in page.inner_text("#citation-bibtex")
        page.fill('#grant input[name="user"]', "newcomer")
        page.select_option('#grant select[name="role"]', "proofreader")
        page.click("#grant button")
        assert wait_until(page, lambda: "newcomer" in page.inner_text("#grants"))
        assert accounts.grants("cg") and {
            "user": "newcomer",
            "dataset": "cg",
            "role": "proofreader",
        } in accounts.grants("cg")
        page.fill('#grant input[name="user"]', "nobody-by-this-name")
        page.click("#grant button")
        assert wait_until(page, lambda: page.locator("#problem").is_visible())
        assert "nobody-by-this-name" in page.inner_text("#problem")
        page.screenshot(path=str(SCREENSHOTS / "page-dataset.png"), full_page=True)
        page.reload()  # after a full-page screenshot Chromium's next click here went nowhere
        page.click("#audit")  # its audit log: what was just done, by whom
        page.wait_for_url(re.compile(r".*/audit\?dataset=cg$"))  # a glob would read "?" as any character
        assert "ada\tgrant\tcg\tnewcomer" in page.inner_text("#entries")  # who gave whom a role on cg
        page.screenshot(path=str(SCREENSHOTS / "page-audit.png"), full_page=False)
        assert not [e for e in errors if "404" not in e and "400" not in e], errors
        page.close()


def test_the_audit_page_is_for_admins_each_seeing_what_they_administer(graph_app, settings, small_volumes):
    from segmentation.access import Accounts
    from segmentation.datasets import Datasets

    accounts = Accounts(settings.database_url)
    Datasets(settings.database_url).add("other", image=small_volumes["image"])
    dataset_admin = accounts.role_token("ada", "cg", "admin", by="tests")
    accounts.grant("tester", "other", "viewer", by="root")
    accounts.add_user("root", site_admin=True, by="tests")
    site_admin = accounts.create_token("root", by="tests")[1]
    client = graph_app.test_client()

    def audit(query="", token=None):
        headers = {**ROLE_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
        return client.get(f"/audit{query}", headers=headers)

    stranger = audit()
    assert stranger.status_code == 401 and "/login?next=/audit" in stranger.get_data(as_text=True)
    assert audit(token=graph_app.token).status_code == 403  # a proofreader administers nothing
    mine = audit(token=dataset_admin).get_data(as_text=True)
    actions = re.findall(r"<td><code>([a-z._]+)</code></td>", mine)
    assert "grant" in actions and 'href="/datasets/cg"' in mine and 'href="/datasets/other"' not in mine
    assert audit("?dataset=other", token=dataset_admin).status_code == 403
    everything = audit(token=site_admin).get_data(as_text=True)
    assert 'href="/datasets/other"' in everything and 'href="/audit"' in everything  # the header's Audit
    tags_only = re.findall(
        r"<td><code>([a-z._]+)</code></td>", audit("?action=tag.*", token=site_admin).get_data(as_text=True)
    )
    assert tags_only and set(tags_only) == {"tag.add"}  # the three tags of the fixture, nothing else
    paged = audit("?limit=2", token=site_admin).get_data(as_text=True)
    ids = [int(i) for i in re.findall(r'data-entry="(\d+)"', paged)]
    older = unescape(re.search(r'id="older" href="([^"]+)"', paged).group(1))
    next_ids = [
        int(i)
        for i in re.findall(
            r'data-entry="(\d+)"', audit(older[len("/audit") :], token=site_admin).get_data(as_text=True)
        )
    ]
    assert len(ids) == 2 and next_ids and max(next_ids) < min(ids)
    for bad in ("?before_id=" + "9" * 30, f"?before_id={2**40}", "?before_id=x", "?limit=0", "?since=yesterday-ish"):
        assert audit(bad, token=site_admin).status_code == 400, bad
        api = client.get(f"/api/v1/audit{bad}", headers={"Authorization": f"Bearer {site_admin}"})
        assert api.status_code == 400 and api.get_json()["message"], bad


def test_a_neurons_page_draws_its_lineage_and_shows_it_as_it_was_at_a_moment(graph_app, settings):
    from urllib.parse import unquote

    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids

    client = graph_app.test_client()
    one, two, three = (int(s) for s in supervoxel_ids(np.array([1, 2, 3], dtype=np.uint64)))
    graph = Graph.open(settings.database_url, "cg")
    first, second = graph.root(one), graph.root(three)
    before = datetime.datetime.now(datetime.UTC)
    (merged,) = graph.merge(two, three, user="trainee").new_root_ids
    graph.split([one], [three], user="trainee")
    now = sorted({graph.root(one), graph.root(three)})
    html = client.get(f"/datasets/cg/neurons/{merged}", headers=ROLE_HEADERS).get_data(as_text=True)
    drawn = {int(r) for r in re.findall(r'class="lineage-node" data-root="(\d+)"', html)}
    assert drawn == {first, second, merged, *now}  # parents, itself, what it became
    assert html.count("<line ") == 4  # two merged into it, it split into two
    assert f'href="/datasets/cg/neurons/{first}" class="lineage-node"' in html
    untouched = client.get(f"/datasets/cg/neurons/{first}", headers=ROLE_HEADERS).get_data(as_text=True)
    assert 'id="lineage"' in untouched  # it became the merged neuron: drawn too

    then = client.get(f"/datasets/cg/neurons/{merged}", query_string={"at": before.isoformat()}, headers=ROLE_HEADERS)
    page = then.get_data(as_text=True)
    shown = int(
        re.search(
            r'id="then">At [^<]+ its supervoxels were part of neuron\s*<a href="/datasets/cg/neurons/(\d+)"', page
        ).group(1)
    )
    assert shown in (first, second)  # before the merge: one of the two it was made of
    link = unquote(unescape(re.search(r'id="open-then" href="([^"]+)"', page).group(1)))
    assert f"/data/cg@{before.timestamp():.6f}/segmentation" in link and f'"{shown}"' in link
    assert client.get(f"/datasets/cg/neurons/{merged}?at=last-tuesday", headers=ROLE_HEADERS).status_code == 400


def test_a_neurons_page_lists_the_callers_own_links_that_show_it_and_nobody_elses(graph_app, settings):
    import json

    from segmentation.access import Accounts
    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids

    client = graph_app.test_client()
    one, two, three = (int(s) for s in supervoxel_ids(np.array([1, 2, 3], dtype=np.uint64)))
    graph = Graph.open(settings.database_url, "cg")
    first = graph.root(one)
    state = {
        "dimensions": {"x": [8e-9, "m"], "y": [8e-9, "m"], "z": [4e-8, "m"]},
        "position": [4.5, 16.5, 4.5],
        "layers": [
            {
                "type": "segmentation",
                "source": "precomputed://http://localhost/data/cg/segmentation",
                "segments": [str(first)],
                "name": "cells",
            }
        ],
    }
    mine = {"Authorization": f"Bearer {graph_app.token}"}
    posted = client.post("/api/v1/states?title=my%20neuron", data=json.dumps(state), headers=mine).get_json()
    other = Accounts(settings.database_url).role_token("olga", "cg", "viewer", by="tests")
    page = client.get(f"/datasets/cg/neurons/{first}", headers={**ROLE_HEADERS, **mine}).get_data(as_text=True)
    assert f'href="/s/{posted["short_id"]}"' in page and "my neuron" in page
    (merged,) = graph.merge(two, three, user="trainee").new_root_ids  # the link follows it as now
    now = client.get(f"/datasets/cg/neurons/{merged}", headers={**ROLE_HEADERS, **mine}).get_data(as_text=True)
    assert f'href="/s/{posted["short_id"]}"' in now
    then = client.get(f"/datasets/cg/neurons/{first}", headers={**ROLE_HEADERS, **mine}).get_data(as_text=True)
    assert "shows it as it was" in then
    for stranger in ({"Authorization": f"Bearer {other}"}, {}):  # another person's links are theirs
        page = client.get(f"/datasets/cg/neurons/{merged}", headers={**ROLE_HEADERS, **stranger}).get_data(as_text=True)
        assert posted["short_id"] not in page


def test_the_changes_index_lists_each_visible_dataset_with_its_edits_this_week(graph_app, settings, small_volumes):
    from segmentation.datasets import Datasets
    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids
    from tests.helpers import add_two_neuron_dataset

    add_two_neuron_dataset(settings.database_url, "secret", small_volumes["image"], settings.home, public=False)
    Datasets(settings.database_url).add("plain", image=small_volumes["image"])  # no graph: not listed
    two, three = (int(s) for s in supervoxel_ids(np.array([2, 3], dtype=np.uint64)))
    graph = Graph.open(settings.database_url, "cg")
    graph.merge(two, three, user="ana")
    graph.split([two], [three], user="bo")
    client = graph_app.test_client()
    html = client.get("/changes", headers=ROLE_HEADERS).get_data(as_text=True)
    rows = re.findall(
        r'<tr><td><a class="changes" href="/datasets/([^/]+)/changes">[^<]*</a></td>\s*<td>(\d+)</td><td>(\d+)', html
    )
    assert rows == [("cg", "2", "2")]  # the private one and the graph-less one are not listed
    assert 'href="/changes"' in html  # in every page's header


def test_a_neurons_page_gives_its_bounding_box(graph_app, settings):
    from segmentation.graph import Graph
    from segmentation.graph.ids import supervoxel_ids

    (one,) = (int(s) for s in supervoxel_ids(np.array([1], dtype=np.uint64)))
    root = Graph.open(settings.database_url, "cg").root(one)
    html = graph_app.test_client().get(f"/datasets/cg/neurons/{root}", headers=ROLE_HEADERS).get_data(as_text=True)
    box = text_of(re.search(r'<td id="box">(.*?)</td>', html, re.S).group(1))
    assert box.startswith("x 0–16, y 0–32, z 0–8 voxels"), box  # labels 1 and 2: the first 16 slabs of x
    assert "(0.13 × 0.26 × 0.32 µm)" in box
