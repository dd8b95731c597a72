"""The visitor pages (``/``, ``/about``), the API guide (``/api``) and Swagger UI (``/docs``).

Every asset is served from ``vasari/web`` and Swagger UI's from an installed package
(fastapi-offline): nothing comes from a CDN. Without those assets ``/docs`` is the API guide.
Static folders cannot travel in an APIRouter: ``mount_assets(app)`` mounts them.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from vasari.service.config import WEB_DIR

router = APIRouter(include_in_schema=False)


def swagger_assets() -> Path | None:
    """Swagger UI's JS/CSS from an installed package (fastapi-offline), if any."""
    try:
        import fastapi_offline  # type: ignore[import-not-found]
    except ImportError:
        return None
    static = Path(fastapi_offline.__file__).resolve().parent / "static"
    return static if (static / "swagger-ui-bundle.js").is_file() else None


def mount_assets(app: FastAPI) -> None:
    """Serve ``vasari/web`` at /static and Swagger UI's assets (if installed) at /docs-assets."""
    assets = swagger_assets()
    if assets is not None:
        app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")


@router.get("/docs")
async def docs(request: Request):
    if "docs-assets" not in {getattr(route, "name", None) for route in request.app.routes}:
        return RedirectResponse("/api")
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Vasari API",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
        swagger_ui_parameters={"validatorUrl": None, "defaultModelsExpandDepth": 0},
    )
    back = '<p style="margin:12px 20px;font-family:sans-serif"><a href="/">&larr; Vasari</a> &middot; <a href="/api">API guide</a></p>'
    return HTMLResponse(page.body.decode("utf-8").replace("<body>", "<body>\n" + back, 1))


@router.get("/", response_class=HTMLResponse)
async def page():
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


@router.get("/about", response_class=HTMLResponse)
async def about_page():
    return FileResponse(WEB_DIR / "about.html", media_type="text/html")


@router.get("/api", response_class=HTMLResponse)
async def api_page(request: Request):
    """The API guide, its curl examples pointing at this server as the visitor reached it."""
    origin = html.escape(str(request.base_url).rstrip("/"), quote=True)
    return HTMLResponse((WEB_DIR / "api.html").read_text(encoding="utf-8").replace("__ORIGIN__", origin))
