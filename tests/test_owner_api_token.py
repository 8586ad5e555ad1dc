"""The owner API's token check: a wrong token, or one that is not ASCII, is a 401, never a 500."""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from studio.ui import owner_api


def test_a_wrong_or_non_ascii_token_is_refused_with_401(studio):
    app = FastAPI()
    app.include_router(owner_api.router(studio, "the-token"))
    client = TestClient(app, raise_server_exceptions=False)
    url = f"/{owner_api.API}/ping"
    for sent in (b"wrong", "t\u00e9ken".encode("utf-8"), "\u00e9".encode("latin-1")):
        assert client.get(url, headers={owner_api.TOKEN_HEADER: sent}).status_code == 401, sent
    assert client.get(url).status_code == 401
    assert client.get(url, headers={owner_api.TOKEN_HEADER: "the-token"}).status_code == 200
