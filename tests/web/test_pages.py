"""The server-rendered index page and static files."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from app.main import SOURCE_URL
from tests.web.htmltree import parse


async def test_the_index_lists_the_projects_from_the_database(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await app.state.stores.dataset.create("birds", ["gull", "crow"])
    await app.state.stores.dataset.create("cars", [])

    response = await client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    table = parse(response.text).find("table", id="projects")
    rows = {
        row.find("td", class_="name").text(): [td.text() for td in row.find_all("td")]
        for row in table.find("tbody").find_all("tr")
    }
    assert set(rows) == {"birds", "cars"}
    assert rows["birds"][1] == "gull, crow"
    assert rows["cars"][1] == "—"


async def test_the_index_without_projects_says_there_are_none(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    assert response.status_code == 200
    document = parse(response.text)
    assert document.find_all("table", id="projects") == []
    assert "No projects yet" in document.find("main").text()


async def test_the_index_footer_links_to_the_source_and_the_agpl(
    client: httpx.AsyncClient,
) -> None:
    footer = parse((await client.get("/")).text).find("footer")

    links = {a.attrs["href"]: a.text() for a in footer.find_all("a")}
    assert "source" in links.get(SOURCE_URL, "").casefold(), links
    licence = [href for href, text in links.items() if "AGPL" in text]
    assert licence and "agpl" in licence[0].casefold()
    if SOURCE_URL.startswith("/"):
        # Served by the app itself (AGPL section 13): the link must work.
        served = await client.get(SOURCE_URL)
        assert served.status_code == 200
        assert served.content


async def test_the_index_loads_the_vendored_htmx(client: httpx.AsyncClient) -> None:
    document = parse((await client.get("/")).text)

    sources = [s.attrs.get("src") for s in document.find_all("script")]
    assert "/static/htmx.min.js" in sources
    script = await client.get("/static/htmx.min.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "htmx" in script.text


async def test_an_unknown_page_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-page")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    alert = parse(response.text).find("p", class_="error")
    assert "no page at /no-such-page" in alert.text()


async def test_a_body_that_is_not_json_gets_a_readable_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/projects", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json() == {"detail": "the request body is not valid JSON"}
