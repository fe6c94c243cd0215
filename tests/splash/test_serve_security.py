"""What the splash web app refuses (mrcnn/splash/web.py, mrcnn/splash/service.py): foreign Host
names (DNS rebinding), cross-origin API requests (CSRF), loosely parsed parameters, images too
large by their header, and what it still answers (the page's own requests, curl, thin images).

The results the app gives are checked in test_serve.py.
"""

from __future__ import annotations

import socket

import pytest

from tests.helpers.serve import (
    CLASS_NAMES,
    LOCAL_URL,
    local_client,
    png_bytes,
    png_claiming,
    serve_model,
)

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install '.[serve]'")
pytest.importorskip("multipart", reason="the serve extra is not installed: pip install '.[serve]'")
pytest.importorskip("httpx2", reason="the tests' HTTP client: pip install httpx2")

from mrcnn.splash import service as service_module  # noqa: E402
from mrcnn.splash.service import SplashService, UploadError  # noqa: E402
from mrcnn.splash.web import HostPolicy, check_address, create_app  # noqa: E402

NAMES = ["BG", *CLASS_NAMES]
PAGE_HEADERS = {"origin": LOCAL_URL, "sec-fetch-site": "same-origin"}  # a fetch by the page


@pytest.fixture(scope="module")
def service():
    return SplashService(serve_model(DETECTION_MIN_CONFIDENCE=0.5), NAMES, score_floor=0.05)


@pytest.fixture(scope="module")
def client(service):
    with local_client(create_app(service)) as client:
        yield client


@pytest.fixture(scope="module")
def upload_id(client) -> str:
    response = client.post("/api/uploads", files={"image": ("1.png", png_bytes(64, 48))})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture()
def no_detect(service, monkeypatch):
    """Fail the test if the model runs (a refused request must not reach it)."""

    def refuse(images):
        raise AssertionError("a refused request reached the model")

    monkeypatch.setattr(service.model, "detect", refuse)


def photo_files(name: str = "1.png") -> dict:
    return {"image": (name, png_bytes(64, 48))}


# ------------------------------------------------------------------------------------------------
# Host (DNS rebinding) and Origin (CSRF)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:8000", "127.0.0.1.attacker.example", "[::2]"]
)
@pytest.mark.parametrize("path", ["/", "/api/info"])
def test_a_foreign_host_is_refused_on_the_page_and_the_api(client, host, path):
    response = client.get(path, headers={"host": host})
    assert response.status_code == 403
    error = response.json()["error"]
    assert f"Host {host!r} is not a name of this server" in error and "--allow-host" in error


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:8000", "localhost", "LOCALHOST:9999", "[::1]", "[::1]:8000"]
)
def test_the_loopback_names_are_accepted_with_or_without_a_port(client, host):
    assert client.get("/api/info", headers={"host": host}).status_code == 200


def test_every_interface_accepts_ip_addresses_and_allowed_names_only():
    policy = HostPolicy.for_address("0.0.0.0", ["MyPC.local"])
    for host in ("192.168.1.5:8000", "[fe80::1]", "mypc.local:8000", "localhost"):
        assert policy.refusal(host) is None, host
    refused = ("attacker.example", "mypc.local.attacker.example", "[localhost]", "[abc]", "::1")
    for host in (*refused, "", None, "a b"):
        assert policy.refusal(host) is not None, host
    local = HostPolicy.for_address("127.0.0.1")
    assert local.refusal("192.168.1.5") is not None  # not listening there: not a name of it
    assert HostPolicy.for_address("192.168.1.5").refusal("192.168.1.5:8000") is None
    for bad in ("mypc:8000", "http://mypc", "my pc"):
        with pytest.raises(ValueError, match="--allow-host"):
            HostPolicy.for_address("127.0.0.1", [bad])


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://attacker.example"},
        {"origin": "null"},  # a sandboxed frame or a file:// page
        {"origin": "http://localhost:8000"},  # another origin, even if also this computer
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},  # another port of localhost
        {"origin": LOCAL_URL, "sec-fetch-site": "cross-site"},
    ],
)
def test_cross_origin_api_requests_are_refused_before_the_model_runs(
    client, no_detect, upload_id, headers
):
    posted = client.post("/api/detect", files=photo_files(), headers=headers)
    got = client.get(f"/api/uploads/{upload_id}/splash.png", headers=headers)
    for response in (posted, got):
        assert response.status_code == 403
        assert "cross-" in response.json()["error"] and "refused" in response.json()["error"]


def test_the_pages_own_requests_and_curl_are_answered(client, upload_id):
    assert client.post("/api/uploads", files=photo_files(), headers=PAGE_HEADERS).status_code == 201
    assert client.post("/api/detect", files=photo_files()).status_code == 200  # curl: no Origin
    img = {"sec-fetch-site": "same-origin"}  # an <img> of the page: no Origin on a GET
    assert client.get(f"/api/uploads/{upload_id}/splash.png", headers=img).status_code == 200
    typed = {"sec-fetch-site": "none"}  # a URL typed in the address bar
    assert client.get("/api/info", headers=typed).status_code == 200
    link = {"sec-fetch-site": "cross-site"}  # a link to the page from another site
    assert client.get("/", headers=link).status_code == 200


# ------------------------------------------------------------------------------------------------
# Parameters, parsed strictly
# ------------------------------------------------------------------------------------------------
BAD_QUERIES = [
    ("min_score=0.5&min_score=0.6", "'min_score' is given 2 times"),
    ("min_score=1e-1", "min_score='1e-1'"),
    ("min_score=nan", "min_score='nan'"),
    ("min_score=-0.5", "min_score='-0.5'"),
    ("min_score=%200.5", "min_score=' 0.5'"),
    ("min_score=", "min_score=''"),
    ("classes=%C2%B2", "classes='²'"),  # isdigit() but not int(): once a 500
    ("classes=%D9%A1", "classes='١'"),  # an Arabic-Indic 1
    ("classes=1,,2", "classes='1,,2'"),
    ("classes=1.0", "classes='1.0'"),
    ("classes=-1", "classes='-1'"),
    ("classes=1%2C%202", "classes='1, 2'"),
    ("min-score=0.5", "unknown parameter 'min-score'"),
]


@pytest.mark.parametrize("query, words", BAD_QUERIES)
@pytest.mark.parametrize("route", ["detections.json", "detections.jpg", "splash.png", "detect"])
def test_every_bad_parameter_gets_a_400_naming_it(client, upload_id, route, query, words):
    if route == "detect":
        response = client.post(f"/api/detect?{query}", files=photo_files())
    else:
        response = client.get(f"/api/uploads/{upload_id}/{route}?{query}")
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]


def test_parameters_a_route_does_not_take_get_a_400(client, upload_id):
    cases = [
        client.get("/api/info?x=1"),
        client.post("/api/uploads?min_score=0.5", files=photo_files()),
        client.get(f"/api/uploads/{upload_id}/detections.json?effect=gray"),
        client.get(f"/api/uploads/{upload_id}/splash.png?effect=GRAY"),
        client.post("/api/uploads", files=photo_files(), data={"note": "x"}),
    ]
    words = ["'x'", "'min_score'", "'effect'", "effect='GRAY'", "form field 'note'"]
    for response, word in zip(cases, words, strict=True):
        assert response.status_code == 400 and word in response.json()["error"], response.text


def test_a_file_name_of_unicode_digits_is_a_string_image_id(client):
    response = client.post("/api/uploads", files=photo_files("².png"))
    assert response.status_code == 201, response.text  # int("²") once gave a 500
    assert all(d["image_id"] == "²" for d in response.json()["detections"])


# ------------------------------------------------------------------------------------------------
# Sizes
# ------------------------------------------------------------------------------------------------
def test_a_huge_image_is_refused_from_its_header_before_decoding(client, monkeypatch):
    def decode(*args, **kwargs):
        raise AssertionError("the huge image was decoded")

    monkeypatch.setattr(service_module, "decode_image", decode)
    data = png_claiming(10000, 10000)
    assert len(data) < 100
    response = client.post("/api/uploads", files={"image": ("huge.png", data)})
    assert response.status_code == 413
    assert response.json()["error"].startswith(
        "huge.png: 10000 x 10000 = 100000000 pixels is over the limit of 50000000 pixels;"
    )
    bomb = client.post("/api/detect", files={"image": ("bomb.png", png_claiming(20000, 20000))})
    assert bomb.status_code == 413 and "decompression bombs" in bomb.json()["error"]


def test_over_limit_messages_give_exact_bytes(service):
    limit = 20 * 2**20
    with pytest.raises(UploadError) as error:
        service.detect(b"\0" * (limit + 1), "big.jpg")  # 20.0 MiB, rounded
    assert error.value.status == 413
    assert str(error.value).startswith(
        "big.jpg: 20971521 bytes is over the upload limit of 20971520 bytes (20.0 MiB);"
    )
    small = SplashService(service.model, NAMES, max_upload_bytes=1000)
    with local_client(create_app(small)) as client:
        response = client.post("/api/detect", files={"image": ("big.jpg", b"\0" * 70000)})
    assert response.status_code == 413
    length = int(response.request.headers["content-length"])
    assert f"the request: {length} bytes is over the 66536 bytes allowed" in response.text
    assert "the upload limit of 1000 bytes" in response.text


@pytest.mark.parametrize("width, height", [(4000, 1), (1, 4000)])
def test_images_of_extreme_aspect_ratio_are_detected(client, width, height):
    response = client.post("/api/uploads", files={"image": ("thin.png", png_bytes(width, height))})
    assert response.status_code == 201, response.text  # a side resized to 0 once gave a 500
    body = response.json()
    assert (body["width"], body["height"]) == (width, height)
    base = f"/api/uploads/{body['id']}"
    assert client.get(f"{base}/splash.png?min_score=0.05").status_code == 200
    assert client.get(f"{base}/detections.jpg?min_score=0.05").status_code == 200


# ------------------------------------------------------------------------------------------------
# The address
# ------------------------------------------------------------------------------------------------
def _unresolvable(*args, **kwargs):
    """socket.getaddrinfo of a name that does not resolve (no DNS query, however slow)."""
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def test_a_host_name_that_does_not_resolve_is_said_so(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _unresolvable)
    with pytest.raises(RuntimeError) as error:
        check_address("no-such-host.invalid", 8000)
    message = str(error.value)
    assert "the name 'no-such-host.invalid' does not resolve" in message
    assert "--port" not in message and "--host" in message


def test_serve_command_refuses_a_bad_address_before_loading(tmp_path, monkeypatch, capsys):
    from mrcnn.cli import main

    weights = ["--weights", str(tmp_path / "not-loaded.pt")]
    assert main(["serve", *weights, "--allow-host", "mypc.local:8000"]) == 1
    assert "--allow-host 'mypc.local:8000': give a host name" in capsys.readouterr().err
    monkeypatch.setattr(socket, "getaddrinfo", _unresolvable)
    assert main(["serve", *weights, "--host", "no-such-host.invalid"]) == 1
    assert "the name 'no-such-host.invalid' does not resolve" in capsys.readouterr().err


def test_two_host_headers_are_refused():
    from mrcnn.splash.web import request_refusal

    headers = [(b"host", b"127.0.0.1:8000"), (b"host", b"attacker.example")]
    scope = {"type": "http", "path": "/", "scheme": "http", "headers": headers}
    assert "2 Host headers" in request_refusal(scope, HostPolicy.for_address("127.0.0.1"))
