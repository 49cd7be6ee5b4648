"""Every page on the demo, used in Chromium as a person would on the first day: find a dataset, search
a cell type, open a neuron and the viewer, review an edit, undo it, keep a link and name it, read the
API and the audit log (tests/test_pages.py checks each page's details on a small dataset)."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import call

pytestmark = pytest.mark.browser


def test_every_page_on_the_demo_in_the_browser(fresh_demo, browser):
    from segmentation.access import Accounts
    from segmentation.graph import Graph
    from server import create_app
    from server.runner import BackgroundServer
    from tests.browser import VIEWPORT, page_errors, wait_until

    accounts = Accounts(fresh_demo.database_url)
    accounts.add_user("lead", site_admin=True, by="tests")
    token = accounts.create_token("lead", by="tests")[1]
    graph = Graph.open(fresh_demo.database_url, "demo")
    with BackgroundServer(create_app(fresh_demo)) as server:
        page = browser.new_page(viewport=VIEWPORT)
        errors = page_errors(page)
        page.goto(f"{server.url}/login?next=/datasets#token={token}")
        page.wait_for_url("**/datasets")

        # the dataset's page: what it is and how much of it there is
        page.click('a.dataset-page:text("demo")')
        page.wait_for_url("**/datasets/demo")
        neurons = int(page.inner_text("#neurons").replace(",", ""))
        assert neurons > 10 and int(page.inner_text("#tagged").replace(",", "")) > 10
        assert page.locator("#per-type svg rect").count() >= 3

        # search a type, open the first neuron's page, and the viewer from there
        page.click('header a:text("Search")')
        page.fill("#q", "L2/3 pyramidal")
        assert wait_until(page, lambda: page.locator("#hits tbody tr").count() > 0)
        page.click("#hits a.neuron >> nth=0")
        page.wait_for_url("**/datasets/demo/neurons/*")
        root = int(page.url.rsplit("/", 1)[1])
        assert page.inner_text("#status").startswith("Current") and "L2/3 pyramidal" in page.inner_text("#types")
        assert page.locator("#box").count() == 1  # the demo's ingest keeps supervoxel boxes

        # a trainee's merge, reviewed from the header's Changes, then taken back from the neuron's page
        other = next(int(r) for r in sorted(set(graph.roots(graph.supervoxel_ids).tolist())) if int(r) != root)
        one, two = int(graph.leaves(root)[0]), int(graph.leaves(other)[0])
        done = graph.merge(one, two, user="trainee")
        (merged,) = done.new_root_ids
        page.click('header a:text("Changes")')
        page.click('a.changes:text("demo")')
        page.wait_for_selector(f'tr[data-operation="{done.operation_id}"]')
        assert "trainee" in page.inner_text("#per-user")
        page.goto(f"{server.url}/datasets/demo/neurons/{merged}")
        page.click(f'#edits button[data-operation="{done.operation_id}"]')
        assert wait_until(page, lambda: page.locator("#retired").count() == 1)
        graph.sync()
        assert graph.root(one) != graph.root(two)  # undone

        # keep the view as a link, name it, find it in one's list
        state = json.loads(call(f"{server.url}/api/v1/datasets/demo/state")[1])
        status, body = call(f"{server.url}/api/v1/states?title=first%20look", json.dumps(state).encode(), token=token)
        assert status == 201, body
        short = json.loads(body)["short_id"]
        page.click('header a:text("My links")')
        page.wait_for_selector(f'tr[data-short-id="{short}"]')
        page.fill("#alias-name", "demo-first-look")
        page.click("#new-alias button")
        page.wait_for_selector('tr[data-alias="demo-first-look"]')
        page.goto(f"{server.url}/l/demo-first-look")
        assert wait_until(page, lambda: f"link={short}" in page.url)

        # the API and the audit log
        page.goto(f"{server.url}/api")
        assert wait_until(page, lambda: page.locator(".opblock-tag").count() >= 10)
        page.goto(f"{server.url}/datasets")
        page.click('header a:text("Audit")')
        page.wait_for_url("**/audit")
        actions = re.findall(r"\t(graph\.[a-z]+|token\.create|user\.add)\t", page.inner_text("#entries"))
        assert {"graph.merge", "graph.undo", "user.add", "token.create"} <= set(
            actions
        )  # the undo made on the page too
        assert not [e for e in errors if "404" not in e], errors
        page.close()
