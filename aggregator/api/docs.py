"""The API's documentation page, served whole from this process: it works on a closed network.

FastAPI's own ``/docs`` loads Swagger UI's script and style sheet from a public CDN (and ``/redoc``
ReDoc's), so behind a helpline's firewall the page is blank. Here ``/docs`` is Swagger UI with its
files taken from the ``swagger_ui_bundle`` package (the ``swagger-ui-bundle-v2`` wheel: Swagger UI 5,
which reads the OpenAPI 3.1 document FastAPI writes; Swagger UI 4, in ``swagger-ui-bundle``, refuses
it) and mounted at ``/docs/assets``. Nothing on the page names another origin: Swagger UI's online
validator badge is off, and the page's Content-Security-Policy lets the browser load nothing from
elsewhere. ReDoc is not offered (``/redoc`` is 404): one documentation page, which works offline.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"

#: same origin only; Swagger UI's page starts itself with one inline script
DOCS_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def install(app: FastAPI) -> None:
    """``/docs`` and its assets; the app must be built with ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS_URL, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} · API docs"

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # the default badge asks validator.swagger.io
        )
        page.headers.update(DOCS_HEADERS)
        return page
