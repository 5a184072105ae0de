"""Who may do what, with accounts on: one table, read by one dependency every route runs.

Each role may do what the roles below it may: viewer (reads) < annotator < reviewer < admin. A
request is matched by its method and its route's path template. Reading (GET, HEAD) needs a
viewer unless the table says more; a write needs what the table says, and admin when the table
does not name it (so a route added later is refused to all but admins until it is listed
here). Without accounts nobody is logged in and nothing is refused.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from app.domain.accounts import Login, Role

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

ANNOTATOR_WRITES = (
    # Uploads and capture sessions (video, webcam, folder, stream).
    "POST /projects/{name}/upload",
    "POST /api/v1/projects/{name}/images",
    "POST /projects/{name}/sessions/video",
    "POST /api/v1/projects/{name}/sessions/video",
    "POST /projects/{name}/sessions/webcam",
    "POST /api/v1/projects/{name}/sessions/webcam",
    "POST /api/v1/sessions/{session_id}/frames",
    "POST /sessions/{session_id}/webcam/end",
    "POST /api/v1/sessions/{session_id}/webcam/end",
    "POST /projects/{name}/sessions/folder",
    "POST /api/v1/projects/{name}/sessions/folder",
    "POST /sessions/{session_id}/folder/end",
    "POST /api/v1/sessions/{session_id}/folder/end",
    "POST /projects/{name}/sessions/stream",
    "POST /api/v1/projects/{name}/sessions/stream",
    "POST /sessions/{session_id}/feed/capture",
    "POST /api/v1/sessions/{session_id}/feed/capture",
    "POST /sessions/{session_id}/feed/end",
    "POST /api/v1/sessions/{session_id}/feed/end",
    # Labels, a new class to label with, splits of single images.
    "PUT /api/v1/projects/{name}/images/{filename}/labels",
    "POST /api/v1/projects/{name}/images/{filename}/suggestions",
    "POST /api/v1/projects/{name}/images/{filename}/suggestions/import",
    "POST /projects/{name}/classes",
    "POST /api/v1/projects/{name}/classes",
    "POST /projects/{name}/images/move",
    "POST /api/v1/projects/{name}/images/move",
    "POST /projects/{name}/images/{filename}/move",
    # Imports (into a project, or as a new one) and exports.
    "POST /imports",
    "POST /api/v1/imports",
    "POST /projects/{name}/import",
    "POST /projects/{name}/export",
    "POST /api/v1/projects/{name}/export",
    # Dataset versions: building one reads projects and writes a new folder, like an export.
    "POST /versions/new",
    "POST /api/v1/versions",
)
REVIEWER_WRITES = (
    "POST /projects/{name}/review/accept",
    "POST /api/v1/projects/{name}/suggestions/accept",
    "POST /api/v1/projects/{name}/images/{filename}/suggestions/accept-all",
    "POST /api/v1/projects/{name}/images/{filename}/suggestions/reject-all",
    "POST /api/v1/projects/{name}/images/{filename}/suggestions/{suggestion_id}/accept",
    "POST /api/v1/projects/{name}/images/{filename}/suggestions/{suggestion_id}/reject",
    "POST /projects/{name}/autolabel",
    "POST /api/v1/projects/{name}/autolabel",
    "POST /projects/{name}/prompts",
    "PUT /api/v1/projects/{name}/prompts",
    "POST /projects/{name}/prompts/autolabel",
    "POST /api/v1/projects/{name}/autolabel/prompts",
    "POST /projects/{name}/models/try",
    "POST /api/v1/projects/{name}/models/try",
    "POST /projects/{name}/images/delete",
    "POST /api/v1/projects/{name}/images/delete",
    "POST /tasks/{task_id}/cancel",
    "POST /api/v1/tasks/{task_id}/cancel",
    # Sending a webhook delivery again (its URL and secret stay an admin's: unlisted writes
    # PUT/DELETE /api/v1/projects/{name}/webhook, .../webhook/secret and the page's forms).
    "POST /webhook-deliveries/{delivery_id}/retry",
    "POST /api/v1/webhook-deliveries/{delivery_id}/retry",
    # Deleting a dataset version (its folder only; the projects stay), like deleting images.
    "POST /versions/{name}/delete",
    "DELETE /api/v1/versions/{name}",
)
# Reads that need more than a viewer.
GUARDED_READS = {
    "GET /users": Role.ADMIN,
    "GET /api/v1/users": Role.ADMIN,
    "GET /progress": Role.REVIEWER,
    "GET /api/v1/progress": Role.REVIEWER,
    # A webhook's URL may be a credential: the API shows it (and deliveries' URLs) to admins.
    "GET /api/v1/projects/{name}/webhook": Role.ADMIN,
    "GET /api/v1/projects/{name}/webhook/deliveries": Role.ADMIN,
    "GET /api/v1/webhook-deliveries": Role.ADMIN,
    "GET /api/v1/webhook-deliveries/{delivery_id}": Role.ADMIN,
}
# The account's own page: a viewer changes their password and makes tokens too.
OWN_ACCOUNT = (
    "POST /login",
    "POST /logout",
    "POST /account/tokens",
    "POST /account/tokens/{token_id}/revoke",
    "POST /account/password",
)

NEEDED: dict[str, Role] = {
    **dict.fromkeys(ANNOTATOR_WRITES, Role.ANNOTATOR),
    **dict.fromkeys(REVIEWER_WRITES, Role.REVIEWER),
    **dict.fromkeys(OWN_ACCOUNT, Role.VIEWER),
    **GUARDED_READS,
}


def needed_role(method: str, path: str) -> Role:
    """The role a request needs: ``method`` and the route's path template."""
    method = "GET" if method == "HEAD" else method
    found = NEEDED.get(f"{method} {path}")
    if found is not None:
        return found
    return Role.VIEWER if method in SAFE_METHODS else Role.ADMIN


def current_login(request: Request) -> Login | None:
    """Who is logged in (set by ``AccountGate``); ``None`` without accounts."""
    login = request.scope.get("state", {}).get("login")
    return login if isinstance(login, Login) else None


async def authorize(request: Request) -> None:
    """Refuse (403, naming the role needed) what the logged-in user's role does not allow."""
    login = current_login(request)
    if login is None:
        return  # accounts off, or a public route (the gate refuses anonymous requests)
    route = request.scope.get("route")
    path = getattr(route, "path_format", None) or request.url.path
    needed = needed_role(request.method, path)
    if not login.user.may(needed):
        raise HTTPException(
            403,
            f"This needs the {needed.value} role (or higher); {login.user.name} is "
            f"{login.user.role.value}. Ask an admin to change your role.",
        )
