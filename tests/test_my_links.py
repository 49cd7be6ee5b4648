"""My links and named aliases (server/blueprints/links.py, state_links/my_links.py, state_links/aliases.py):
one's own list with one's own titles, and short names re-pointed to newer states with their history
kept — private data private through all of it."""

from __future__ import annotations

import json

import pytest

from segmentation.access import Accounts
from segmentation.datasets import Datasets

PRIVATE = ("private", "no-store")


@pytest.fixture
def site(app, settings, small_volumes):
    """Datasets `small` (public) and `hidden` (private); ana may view hidden, bob may not, root is a site admin."""
    Datasets(settings.database_url).add("hidden", image=small_volumes["image"], public=False)
    accounts = Accounts(settings.database_url)
    app.tokens = {
        "ana": accounts.role_token("ana", "hidden", "viewer", by="tests"),
        "bob": accounts.role_token("bob", "small", "viewer", by="tests"),
    }
    accounts.add_user("root", site_admin=True, by="tests")
    app.tokens["root"] = accounts.create_token("root", by="tests")[1]
    app.http = app.test_client()
    return app


def as_user(site, user):
    return {"Authorization": f"Bearer {site.tokens[user]}"} if user else {}


def state(dataset: str, x: float = 4.5) -> bytes:
    return json.dumps(
        {
            "dimensions": {"x": [8e-9, "m"], "y": [8e-9, "m"], "z": [4e-8, "m"]},
            "position": [x, 16.5, 4.5],
            "layers": [
                {"type": "image", "source": f"precomputed://http://localhost/data/{dataset}/image", "name": "em"}
            ],
        }
    ).encode()


def post(site, user, body: bytes, title: str = "") -> dict:
    answer = site.http.post(f"/api/v1/states?title={title}", data=body, headers=as_user(site, user))
    assert answer.status_code in (200, 201), answer.get_json()
    return {**answer.get_json(), "status": answer.status_code}


def listed(site, user) -> dict:
    answer = site.http.get("/api/v1/me/links", headers=as_user(site, user))
    assert answer.status_code == 200, answer.get_json()
    assert answer.headers["Cache-Control"].startswith("private") and "no-store" in answer.headers["Cache-Control"]
    return {link["short_id"]: link for link in answer.get_json()["links"]}


def test_every_state_a_person_posts_is_in_their_list_under_their_own_title(site):
    first = post(site, "ana", state("small"), title="ana's view")
    again = post(site, "bob", state("small"), title="bob's view")  # the same state: one stored row
    assert again["short_id"] == first["short_id"] and again["status"] == 200
    post(site, None, state("small", x=9.5))  # anonymous: nobody's list
    mine, his = listed(site, "ana"), listed(site, "bob")
    assert list(mine) == [first["short_id"]] and list(his) == [first["short_id"]]
    assert mine[first["short_id"]]["title"] == "ana's view" and his[first["short_id"]]["title"] == "bob's view"
    assert mine[first["short_id"]]["datasets"] == ["small"]
    assert site.http.get("/api/v1/me/links").status_code == 401

    # renaming changes one's own list, never the stored state (nor another person's list)
    renamed = site.http.patch(
        f"/api/v1/me/links/{first['short_id']}", json={"title": "Figure 3"}, headers=as_user(site, "bob")
    )
    assert renamed.status_code == 200, renamed.get_json()
    assert listed(site, "bob")[first["short_id"]]["title"] == "Figure 3"
    assert listed(site, "ana")[first["short_id"]]["title"] == "ana's view"
    info = site.http.get(f"/api/v1/states/{first['short_id']}/info").get_json()
    assert info["title"] == "ana's view"
    for bad, words in (
        ({"title": "a\nb"}, "one line"),
        ({"title": "x" * 301}, "at most 300"),
        ({"title": 7}, "string"),
    ):
        answer = site.http.patch(f"/api/v1/me/links/{first['short_id']}", json=bad, headers=as_user(site, "bob"))
        assert answer.status_code == 400 and words in answer.get_json()["message"]

    # forgetting takes it out of the list; the link keeps working
    other = post(site, "bob", state("small", x=12.5), title="other")
    assert site.http.delete(f"/api/v1/me/links/{first['short_id']}", headers=as_user(site, "bob")).status_code == 200
    assert list(listed(site, "bob")) == [other["short_id"]]
    assert site.http.get(f"/api/v1/states/{first['short_id']}").status_code == 200
    # a link that is not in one's list cannot be renamed or forgotten there
    for method in ("patch", "delete"):
        answer = getattr(site.http, method)(
            f"/api/v1/me/links/{other['short_id']}", json={"title": "mine now"}, headers=as_user(site, "ana")
        )
        assert answer.status_code == 404


def test_a_link_to_data_one_may_no_longer_see_leaves_the_list(site, settings):
    secret = post(site, "ana", state("hidden"), title="secret")
    assert secret["short_id"] in listed(site, "ana")
    Accounts(settings.database_url).grant("ana", "hidden", None, by="tests")
    answer = site.http.get("/api/v1/me/links", headers=as_user(site, "ana"))
    assert secret["short_id"] not in {link["short_id"] for link in answer.get_json()["links"]}


def alias(site, user, method, path, body=None):
    answer = getattr(site.http, method)(path, json=body, headers=as_user(site, user))
    return answer.status_code, answer.get_json() if answer.is_json else None, answer.headers


def test_an_alias_is_re_pointed_by_its_owner_and_keeps_every_earlier_target(site):
    one = post(site, "bob", state("small"), title="first")
    two = post(site, "bob", state("small", x=20.5), title="second")
    status, made, headers = alias(site, "bob", "post", "/api/v1/aliases", {"name": "fig-3", "state": one["short_id"]})
    assert status == 201, made
    assert made["target"]["short_id"] == one["short_id"] and made["url"].endswith("/l/fig-3")
    opened = site.http.get("/l/fig-3")
    assert opened.status_code == 302 and f"link={one['short_id']}" in opened.headers["Location"]
    assert "no-store" in opened.headers["Cache-Control"]  # it moves: never kept by a cache

    status, moved, _ = alias(site, "bob", "put", "/api/v1/aliases/fig-3", {"state": two["short_id"]})
    assert status == 200, moved
    assert [t["short_id"] for t in moved["history"]] == [two["short_id"], one["short_id"]]
    assert moved["pointings"] == 2 and moved["history"][1]["by"] == "bob"
    assert f"link={two['short_id']}" in site.http.get("/l/fig-3?as=now").headers["Location"]
    assert "as=now" in site.http.get("/l/fig-3?as=now").headers["Location"]
    assert site.http.get(f"/s/{one['short_id']}").status_code == 302  # the earlier target still opens
    assert alias(site, "bob", "get", "/api/v1/me/aliases")[1]["aliases"][0]["name"] == "fig-3"

    # only its owner (or a site admin) re-points it; names are first come, first served
    status, refused, _ = alias(site, "ana", "put", "/api/v1/aliases/fig-3", {"state": one["short_id"]})
    assert status == 403 and "bob" in refused["message"]
    assert alias(site, "root", "put", "/api/v1/aliases/fig-3", {"state": one["short_id"]})[0] == 200
    status, taken, _ = alias(site, "ana", "post", "/api/v1/aliases", {"name": "fig-3", "state": two["short_id"]})
    assert status == 409 and "taken" in taken["message"]
    assert alias(site, None, "post", "/api/v1/aliases", {"name": "mine", "state": one["short_id"]})[0] == 401


@pytest.mark.parametrize(
    "body, words",
    [
        ({"name": "Fig3", "state": "S"}, "lower-case"),
        ({"name": "-x", "state": "S"}, "lower-case"),
        ({"name": "x" * 65, "state": "S"}, "1-64"),
        ({"name": "a/b", "state": "S"}, "lower-case"),
        ({"name": "ok", "state": "12345"}, "short id"),
        ({"name": "ok"}, "send"),
        ({"name": 5, "state": "S"}, "lower-case"),
    ],
)
def test_bad_alias_requests_are_400_with_the_rule(site, body, words):
    stored = post(site, "bob", state("small"))
    if body.get("state") == "S":
        body = {**body, "state": stored["short_id"]}
    status, answer, _ = alias(site, "bob", "post", "/api/v1/aliases", body)
    assert status == 400 and words in answer["message"], answer


def test_an_alias_of_private_data_is_missing_to_whoever_may_not_see_it(site):
    public = post(site, "ana", state("small"), title="public view")
    secret = post(site, "ana", state("hidden"), title="secret view")
    # one may only point at what one may see
    status, _, _ = alias(site, "bob", "post", "/api/v1/aliases", {"name": "peek", "state": secret["short_id"]})
    assert status == 404
    assert alias(site, "ana", "post", "/api/v1/aliases", {"name": "lab", "state": public["short_id"]})[0] == 201
    assert alias(site, "ana", "put", "/api/v1/aliases/lab", {"state": secret["short_id"]})[0] == 200
    missing = alias(site, None, "get", "/api/v1/aliases/no-such-alias")
    for user in (None, "bob"):
        status, answer, _ = alias(site, user, "get", "/api/v1/aliases/lab")
        assert status == 404 and answer["message"] == "no alias named 'lab'"
        assert (status, answer["error"]) == (missing[0], missing[1]["error"])
        assert site.http.get("/l/lab", headers=as_user(site, user)).status_code == 404
        # re-pointing: sign in first (whatever the alias), then the same 404
        assert alias(site, user, "put", "/api/v1/aliases/lab", {"state": public["short_id"]})[0] == (
            404 if user else 401
        )
    status, seen, headers = alias(site, "ana", "get", "/api/v1/aliases/lab")
    assert status == 200 and seen["target"]["short_id"] == secret["short_id"]
    assert "no-store" in headers["Cache-Control"]
    # pointed back at public data, the earlier private target stays hidden from those who may not see it
    assert alias(site, "ana", "put", "/api/v1/aliases/lab", {"state": public["short_id"]})[0] == 200
    status, seen, _ = alias(site, "bob", "get", "/api/v1/aliases/lab")
    assert status == 200 and [t["short_id"] for t in seen["history"]] == [public["short_id"], public["short_id"]]
    assert seen["hidden"] == 1 and secret["short_id"] not in json.dumps(seen)


def test_the_my_links_page_lists_links_and_aliases_and_asks_strangers_to_sign_in(site):
    html = {"Accept": "text/html"}
    stranger = site.http.get("/me/links", headers=html)
    assert stranger.status_code == 401 and "/login?next=/me/links" in stranger.get_data(as_text=True)
    assert "no-store" in stranger.headers["Cache-Control"] or "private" in stranger.headers["Cache-Control"]
    empty = site.http.get("/me/links", headers={**html, **as_user(site, "bob")}).get_data(as_text=True)
    assert 'id="no-links"' in empty and 'id="no-aliases"' in empty
    one = post(site, "bob", state("small"), title="my <b>view</b>")
    alias(site, "bob", "post", "/api/v1/aliases", {"name": "fig-3", "state": one["short_id"]})
    page = site.http.get("/me/links", headers={**html, **as_user(site, "bob")})
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "private" in page.headers["Cache-Control"]
    assert f"/s/{one['short_id']}" in text and "/l/fig-3" in text
    assert "my &lt;b&gt;view&lt;/b&gt;" in text and "<b>view</b>" not in text  # titles are text, not markup


def test_a_person_renames_a_link_makes_an_alias_and_re_points_it_in_the_browser(site, browser):
    from server.runner import BackgroundServer
    from tests.browser import SCREENSHOTS, VIEWPORT, page_errors, wait_until
    from tests.helpers import call

    with BackgroundServer(site) as server:

        def post_there(x: float, title: str) -> dict:  # as the viewer's Short link button stores a view
            body = state("small", x).replace(b"http://localhost", server.url.encode())
            status, answer = call(f"{server.url}/api/v1/states?title={title}", body, token=site.tokens["bob"])
            assert status == 201, answer
            return json.loads(answer)

        first, second = post_there(4.5, "monday"), post_there(20.5, "tuesday")
        page = browser.new_page(viewport=VIEWPORT)
        errors = page_errors(page)
        page.goto(f"{server.url}/login?next=/datasets#token={site.tokens['bob']}")
        page.wait_for_url("**/datasets")
        page.click("text=My links")
        page.wait_for_url("**/me/links")
        assert page.locator("tbody tr[data-short-id]").count() == 2
        page.fill(f"#title-{first['short_id']}", "Figure 3, first draft")
        page.click(f'form.rename[data-short-id="{first["short_id"]}"] button')
        assert wait_until(page, lambda: listed(site, "bob")[first["short_id"]]["title"] == "Figure 3, first draft")
        page.wait_for_selector("#alias-name")
        page.fill("#alias-name", "figure-3")
        page.select_option("#alias-state", first["short_id"])
        page.click("#new-alias button")
        page.wait_for_selector('tr[data-alias="figure-3"]')
        assert "Figure 3, first draft" in page.inner_text('tr[data-alias="figure-3"] td.target')
        assert page.inner_text(f'tr[data-short-id="{first["short_id"]}"] td.datasets') == "small"
        page.select_option("#repoint-figure-3", second["short_id"])
        page.click('form.repoint[data-alias="figure-3"] button')
        assert wait_until(page, lambda: "tuesday" in page.inner_text('tr[data-alias="figure-3"] td.target'))
        page.click('tr[data-alias="figure-3"] summary')
        history = page.inner_text('tr[data-alias="figure-3"] ol.history')
        assert "tuesday" in history and "Figure 3, first draft" in history and "by bob" in history
        page.fill("#alias-name", "Bad Name")
        page.click("#new-alias button")  # the browser's own check stops it: nothing made, said on the page
        assert page.evaluate("document.getElementById('alias-name').validity.valid") is False
        page.screenshot(path=str(SCREENSHOTS / "page-my-links.png"), full_page=True)
        page.goto(f"{server.url}/l/figure-3")  # followed: the viewer with the newest target
        assert wait_until(page, lambda: f"link={second['short_id']}" in page.url)
        assert not errors, errors
        page.close()


def test_the_my_links_page_hides_earlier_targets_its_owner_may_not_view(site):
    public = post(site, "bob", state("small"), title="public view")
    secret = post(site, "ana", state("hidden"), title="secret view")  # bob may not view it
    assert alias(site, "bob", "post", "/api/v1/aliases", {"name": "lab", "state": public["short_id"]})[0] == 201
    assert alias(site, "root", "put", "/api/v1/aliases/lab", {"state": secret["short_id"]})[0] == 200  # a site admin
    assert alias(site, "root", "put", "/api/v1/aliases/lab", {"state": public["short_id"]})[0] == 200
    page = site.http.get("/me/links", headers={"Accept": "text/html", **as_user(site, "bob")}).get_data(as_text=True)
    assert 'data-alias="lab"' in page and secret["short_id"] not in page
    assert "1 earlier target show data you may not view" in page
    api = alias(site, "bob", "get", "/api/v1/aliases/lab")[1]
    assert api["hidden"] == 1 and secret["short_id"] not in json.dumps(api)  # the page and the API agree


def test_an_owners_aliases_read_at_once_are_the_aliases_read_one_by_one(site, monkeypatch):
    import state_links.aliases as aliases_module

    monkeypatch.setattr(aliases_module, "HISTORY_SHOWN", 3)  # so that some histories are cut
    links = [post(site, "bob", state("small", x=4.5 + i), title=f"view {i}")["short_id"] for i in range(5)]
    for n, name in enumerate(("b-second", "a-first", "c-third")):
        alias(site, "bob", "post", "/api/v1/aliases", {"name": name, "state": links[n]})
        for step in range(n * 2):
            alias(site, "bob", "put", f"/api/v1/aliases/{name}", {"state": links[(n + step + 1) % 5]})
    alias(site, "ana", "post", "/api/v1/aliases", {"name": "not-bobs", "state": links[0]})
    store = aliases_module.Aliases(site.config["AXONLINK_SETTINGS"].database_url)
    at_once = store.of_owner("bob")
    assert [a.name for a in at_once] == ["a-first", "b-second", "c-third"]
    assert at_once == [store.get(a.name) for a in at_once]  # the same targets, order, counts
    assert [a.pointings for a in at_once] == [3, 1, 5] and len(at_once[2].targets) == 3
