"""The page behind a shareable portal link (/portals/{id}?token=...): says which portal it
is and how to use it with portalfs. Never echoes the token into the page."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..auth.access import token_matches

router = APIRouter()

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{description}</p>
<p>This is upload portal {portal_id}. Upload with portalfs:</p>
<pre>export EI_API_URL={api_url}
export EI_PORTAL_ID={portal_id}
export EI_PORTAL_TOKEN=&lt;the part of this page's address after ?token=&gt;
portalfs upload FILE...</pre>
</body></html>
"""


@router.get("/portals/{portal_id}", name="portal_page", response_class=HTMLResponse)
def portal_page(portal_id: int, request: Request, token: str = "") -> HTMLResponse:
    services = request.app.state.services
    portal = services.state.portal(portal_id)
    if portal is None or not token or not token_matches(portal, token):
        # Same answer for a missing portal and a wrong token: links are not probe-able.
        return HTMLResponse("<h1>Unknown portal or invalid link</h1>", status_code=404)
    return HTMLResponse(
        _PAGE.format(
            title=html.escape(portal.name),
            description=html.escape(portal.description),
            portal_id=portal.id,
            api_url=html.escape(services.config.api_url),
        )
    )
