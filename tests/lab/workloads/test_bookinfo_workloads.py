from __future__ import annotations

import http.client
import json
import threading
from typing import Any

import pytest

from pytest_meshcheck.lab.httpserve import HttpServer, Request, Response
from pytest_meshcheck.lab.workloads.details import details_factory
from pytest_meshcheck.lab.workloads.productpage import productpage_factory
from pytest_meshcheck.lab.workloads.ratings import ratings_factory
from pytest_meshcheck.lab.workloads.reviews import reviews_factory

from .conftest import PodNet

BOOKINFO = "docker.io/istio/examples-bookinfo-{}:1.20.2"


def get(ip: str, path: str, port: int = 9080, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(ip, port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get_json(ip: str, path: str, port: int = 9080) -> Any:
    status, body = get(ip, path, port)
    assert status == 200, body
    return json.loads(body)


def ratings_requests(podnet: PodNet) -> int:
    return podnet.logs["ratings-v1"].text().count("GET /ratings/")


def start_bookinfo(podnet: PodNet, reviews_version: str = "v1", *, with_ratings: bool = True) -> str:
    podnet.start(details_factory, name="details-v1", image=BOOKINFO.format("details-v1"), service="details")
    if with_ratings:
        podnet.start(
            ratings_factory, name="ratings-v1", image=BOOKINFO.format("ratings-v1"), service="ratings"
        )
    podnet.start(
        reviews_factory,
        name=f"reviews-{reviews_version}",
        image=BOOKINFO.format(f"reviews-{reviews_version}"),
        service="reviews",
    )
    _, ctx = podnet.start(
        productpage_factory,
        name="productpage-v1",
        image=BOOKINFO.format("productpage-v1"),
        service="productpage",
    )
    return ctx.pod_ip


def test_details_serves_the_book_and_health(podnet: PodNet) -> None:
    _, ctx = podnet.start(details_factory, name="details-v1", image=BOOKINFO.format("details-v1"))
    details = get_json(ctx.pod_ip, "/details/7")
    assert details["id"] == 7
    assert details["author"] == "William Shakespeare"
    assert details["ISBN-13"] == "123-1234567890"
    assert get_json(ctx.pod_ip, "/health") == {"status": "Details is healthy"}
    status, _ = get(ctx.pod_ip, "/details/abc")
    assert status == 400
    assert "GET /details/7" in podnet.logs["details-v1"].text()


def test_ratings_serves_stars(podnet: PodNet) -> None:
    _, ctx = podnet.start(ratings_factory, name="ratings-v1", image=BOOKINFO.format("ratings-v1"))
    assert get_json(ctx.pod_ip, "/ratings/0") == {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}
    assert get_json(ctx.pod_ip, "/health") == {"status": "Ratings is healthy"}


def test_ratings_unavailable_variant_answers_503(podnet: PodNet) -> None:
    _, ctx = podnet.start(
        ratings_factory,
        name="ratings-v1",
        image=BOOKINFO.format("ratings-v1"),
        env={"SERVICE_VERSION": "v-unavailable"},
    )
    status, body = get(ctx.pod_ip, "/ratings/0")
    assert status == 503
    assert json.loads(body) == {"error": "Service unavailable"}


def test_reviews_v1_never_calls_ratings(podnet: PodNet) -> None:
    podnet.start(ratings_factory, name="ratings-v1", image=BOOKINFO.format("ratings-v1"), service="ratings")
    _, ctx = podnet.start(reviews_factory, name="reviews-v1", image=BOOKINFO.format("reviews-v1"))
    document = get_json(ctx.pod_ip, "/reviews/0")
    assert document["podname"] == ctx.hostname
    assert [review["reviewer"] for review in document["reviews"]] == ["Reviewer1", "Reviewer2"]
    assert all("rating" not in review for review in document["reviews"])
    assert ratings_requests(podnet) == 0


@pytest.mark.parametrize(("version", "color"), [("v2", "black"), ("v3", "red")])
def test_reviews_v2_v3_call_ratings_and_colour_stars(podnet: PodNet, version: str, color: str) -> None:
    podnet.start(ratings_factory, name="ratings-v1", image=BOOKINFO.format("ratings-v1"), service="ratings")
    _, ctx = podnet.start(
        reviews_factory, name=f"reviews-{version}", image=BOOKINFO.format(f"reviews-{version}")
    )
    document = get_json(ctx.pod_ip, "/reviews/0")
    assert [review["rating"] for review in document["reviews"]] == [
        {"stars": 5, "color": color},
        {"stars": 4, "color": color},
    ]
    get_json(ctx.pod_ip, "/reviews/0")
    assert ratings_requests(podnet) == 2


def test_reviews_env_overrides_the_image(podnet: PodNet) -> None:
    podnet.start(ratings_factory, name="ratings-v1", image=BOOKINFO.format("ratings-v1"), service="ratings")
    _, ctx = podnet.start(
        reviews_factory,
        name="reviews-v1",
        image=BOOKINFO.format("reviews-v1"),
        env={"ENABLE_RATINGS": "true", "STAR_COLOR": "green"},
    )
    document = get_json(ctx.pod_ip, "/reviews/0")
    assert document["reviews"][0]["rating"] == {"stars": 5, "color": "green"}


def test_reviews_without_ratings_reports_them_unavailable(podnet: PodNet) -> None:
    _, ctx = podnet.start(reviews_factory, name="reviews-v2", image=BOOKINFO.format("reviews-v2"))
    document = get_json(ctx.pod_ip, "/reviews/0")
    assert [review["rating"] for review in document["reviews"]] == [
        {"error": "Ratings service is currently unavailable"},
        {"error": "Ratings service is currently unavailable"},
    ]


def test_reviews_with_failing_ratings_reports_them_unavailable(podnet: PodNet) -> None:
    podnet.start(
        ratings_factory,
        name="ratings-v1",
        image=BOOKINFO.format("ratings-v1"),
        service="ratings",
        env={"SERVICE_VERSION": "v-unavailable"},
    )
    _, ctx = podnet.start(reviews_factory, name="reviews-v3", image=BOOKINFO.format("reviews-v3"))
    document = get_json(ctx.pod_ip, "/reviews/0")
    assert document["reviews"][1]["rating"] == {"error": "Ratings service is currently unavailable"}
    assert ratings_requests(podnet) == 1


def test_productpage_renders_details_and_reviews(podnet: PodNet) -> None:
    ip = start_bookinfo(podnet, "v3")
    status, body = get(ip, "/productpage")
    page = body.decode()
    assert status == 200
    assert "<title>Simple Bookstore App</title>" in page
    assert "The Comedy of Errors" in page
    assert "<dt>ISBN-10:</dt>1234567890" in page
    assert "Reviews served by:" in page
    assert "reviews-v3-7d4b9c5f6-x2x9q" in page
    assert page.count('<font color="red">') == 2
    assert page.count('class="glyphicon glyphicon-star"') == 9
    assert "Error fetching" not in page


def test_productpage_with_reviews_v1_shows_no_stars(podnet: PodNet) -> None:
    ip = start_bookinfo(podnet, "v1")
    _, body = get(ip, "/productpage")
    page = body.decode()
    assert "reviews-v1-7d4b9c5f6-x2x9q" in page
    assert "glyphicon-star" not in page
    assert ratings_requests(podnet) == 0


def test_productpage_reports_failing_backends(podnet: PodNet) -> None:
    _, ctx = podnet.start(productpage_factory, name="productpage-v1", image=BOOKINFO.format("productpage-v1"))
    status, body = get(ctx.pod_ip, "/productpage")
    page = body.decode()
    assert status == 200
    assert "Error fetching product details!" in page
    assert "Error fetching product reviews!" in page
    assert "Sorry, product reviews are currently unavailable for this book." in page
    status, body = get(ctx.pod_ip, "/api/v1/products/0/reviews")
    assert status == 500
    assert json.loads(body) == {"error": "Sorry, product reviews are currently unavailable for this book."}


def test_productpage_api(podnet: PodNet) -> None:
    ip = start_bookinfo(podnet, "v2")
    products = get_json(ip, "/api/v1/products")
    assert products[0]["title"] == "The Comedy of Errors"
    assert get_json(ip, "/api/v1/products/0")["publisher"] == "PublisherA"
    assert get_json(ip, "/api/v1/products/0/reviews")["reviews"][0]["rating"]["color"] == "black"
    assert get_json(ip, "/api/v1/products/0/ratings") == {
        "id": 0,
        "ratings": {"Reviewer1": 5, "Reviewer2": 4},
    }
    status, body = get(ip, "/health")
    assert (status, body) == (200, b"Product page is healthy")
    status, body = get(ip, "/")
    assert status == 200
    assert b"<title>Simple Bookstore App</title>" in body


def test_productpage_propagates_trace_headers_and_signed_in_user(podnet: PodNet) -> None:
    seen: list[dict[str, str]] = []

    def fake_reviews(request: Request) -> Response:
        seen.append({name.lower(): value for name, value in request.headers})
        return Response(body=json.dumps({"id": "0", "podname": "x", "reviews": []}).encode())

    ip = podnet.address()
    server = HttpServer(ip, 9080, fake_reviews)
    server.start()
    try:
        podnet.resolver.names["reviews"] = ip
        _, ctx = podnet.start(
            productpage_factory, name="productpage-v1", image=BOOKINFO.format("productpage-v1")
        )
        conn = http.client.HTTPConnection(ctx.pod_ip, 9080, timeout=10)
        conn.request("POST", "/login", body="username=jason&passwd=x")
        login = conn.getresponse()
        login.read()
        assert login.status == 302
        cookie = login.getheader("Set-Cookie", "").split(";")[0]
        status, body = get(
            ctx.pod_ip,
            "/productpage",
            headers={
                "Cookie": cookie,
                "x-request-id": "abc-123",
                "traceparent": "00-1-2-01",
                "x-other": "no",
            },
        )
        assert status == 200
        assert "jason" in body.decode()
    finally:
        server.stop()
    assert seen
    assert seen[0]["x-request-id"] == "abc-123"
    assert seen[0]["traceparent"] == "00-1-2-01"
    assert seen[0]["end-user"] == "jason"
    assert "x-other" not in seen[0]


def test_keep_alive_serves_several_requests_on_one_connection(podnet: PodNet) -> None:
    _, ctx = podnet.start(details_factory, name="details-v1", image=BOOKINFO.format("details-v1"))
    conn = http.client.HTTPConnection(ctx.pod_ip, 9080, timeout=10)
    try:
        sockets = []
        for product in range(3):
            conn.request("GET", f"/details/{product}")
            response = conn.getresponse()
            assert json.loads(response.read())["id"] == product
            assert not response.will_close
            sockets.append(conn.sock)
        assert sockets[0] is not None
        assert sockets == [sockets[0]] * 3
    finally:
        conn.close()


def test_stop_frees_ports_and_leaves_no_threads(podnet: PodNet) -> None:
    before = set(threading.enumerate())
    ip = start_bookinfo(podnet, "v2")
    idle = http.client.HTTPConnection(ip, 9080, timeout=10)
    idle.request("GET", "/productpage")
    assert idle.getresponse().read()
    podnet.stop_all()
    leaked = [thread for thread in threading.enumerate() if thread not in before]
    assert leaked == []
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection(ip, 9080, timeout=5).connect()


def test_backend_addresses_follow_the_upstream_env_variables(podnet: PodNet) -> None:
    podnet.start(ratings_factory, name="ratings-v1", image=BOOKINFO.format("ratings-v1"), service="stars")
    _, ctx = podnet.start(
        reviews_factory,
        name="reviews-v2",
        image=BOOKINFO.format("reviews-v2"),
        env={"RATINGS_HOSTNAME": "stars", "RATINGS_SERVICE_PORT": "not-a-port"},
    )
    document = get_json(ctx.pod_ip, "/reviews/0")
    assert document["reviews"][0]["rating"] == {"stars": 5, "color": "black"}
    assert ratings_requests(podnet) == 1
