"""The settings page (``/settings``): the instance's preferences, one form per group (annotator
keys, split ratios of new projects, auto-label thresholds, image grid), each saved in place with
htmx; a refusal comes back as the form with the message beside its field and what was typed
kept (422). Reset to defaults, and the preferences as a YAML file to download and to import
(checked whole: a file with any mistake changes nothing).

The JSON API: ``GET``/``PUT``/``DELETE /api/v1/preferences`` and
``GET``/``PUT /api/v1/preferences/yaml``.

Preferences are the instance's, not a person's: with accounts on every write here needs the
admin role (the permission table's default for a write it does not name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.datastructures import UploadFile

from app.domain import preferences as rules
from app.domain.accounts import Role
from app.domain.errors import Invalid
from app.domain.models import SPLITS
from app.domain.preferences import PreferenceInvalid, Preferences
from app.services import preferences as preference_service
from app.web.csrf import require_csrf
from app.web.deps import StoresDep
from app.web.permissions import current_login
from app.web.render import redirect, render

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["preferences"], dependencies=[Depends(require_csrf)])

PAGE = "settings/page.html"
YAML_TYPE = "application/yaml"
EXPORT_NAME = "ydc-preferences.yaml"
MAX_FIELD = 200  # characters of one form field


# --- the page --------------------------------------------------------------------------------


def _field_values(prefs: Preferences) -> dict[str, str]:
    """What each form field shows for these preferences."""
    values = {f"keymap.{name}": " ".join(keys) for name, keys in prefs.keymap.items()}
    values |= {f"split_ratios.{s}": f"{prefs.split_ratios[s]:g}" for s in SPLITS}
    values |= {f"autolabel.{k}": f"{v:g}" for k, v in prefs.autolabel.items()}
    values["thumbnail_size"] = prefs.thumbnail_size
    return values


def _keymap_groups() -> list[tuple[str, list[rules.Action]]]:
    groups: dict[str, list[rules.Action]] = {}
    for action in rules.ACTIONS:
        groups.setdefault(action.group, []).append(action)
    return list(groups.items())


def _context(
    request: Request,
    prefs: Preferences,
    *,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    saved: str | None = None,
    notice: str | None = None,
) -> dict[str, Any]:
    login = current_login(request)
    return {
        "nav": "settings",
        "prefs": prefs,
        "values": {**_field_values(prefs), **(values or {})},
        "errors": dict(errors or {}),
        "saved": saved,
        "notice": notice,
        "keymap_groups": _keymap_groups(),
        "splits": SPLITS,
        "thumbnail_sizes": rules.THUMBNAIL_SIZES,
        "autolabel_names": rules.AUTOLABEL_NAMES,
        "key_label": rules.key_label,
        "read_only": login is not None and not login.user.may(Role.ADMIN),
    }


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request, stores: StoresDep) -> HTMLResponse:
    """Every preference, one form per group."""
    prefs = await preference_service.get_preferences(stores)
    notice = {
        "imported": "The file was imported.",
        "reset": "Every preference is back to its default.",
    }.get(request.query_params.get("done", ""))
    return render(request, PAGE, _context(request, prefs, notice=notice))


async def _form_fields(request: Request, prefix: str) -> dict[str, str]:
    form = await request.form()
    return {
        k: str(v)[:MAX_FIELD]
        for k, v in form.items()
        if k.startswith(prefix) and isinstance(v, str)
    }


def _number(text: str) -> float | str:
    """A number field's value: the number, or the text as typed when it is none (the rules
    then refuse it, naming the field)."""
    try:
        return float(text.strip())
    except ValueError:
        return text.strip()


async def _save_group(
    request: Request, stores: StoresDep, group: str, typed: dict[str, str], patch: Any
) -> HTMLResponse:
    """Apply ``patch`` (built from ``typed``) and answer the group's form: saved, or refused
    (422) with the message beside its field and what was typed kept."""
    fragment = f"settings/_{group}.html"
    try:
        if isinstance(patch, PreferenceInvalid):
            raise patch
        prefs = await preference_service.update_preferences(stores, patch)
    except PreferenceInvalid as refusal:
        prefs = await preference_service.get_preferences(stores)
        context = _context(request, prefs, values=typed, errors={refusal.field: refusal.message})
        return render(request, PAGE, context, fragment=fragment, status_code=422)
    return render(request, PAGE, _context(request, prefs, saved=group), fragment=fragment)


@router.post("/settings/keymap", response_class=HTMLResponse)
async def save_keymap(request: Request, stores: StoresDep) -> HTMLResponse:
    """The annotator's keys: each action's field holds its keys separated by spaces."""
    typed = await _form_fields(request, "keymap.")
    patch: Any
    try:
        keymap: dict[str, list[str]] = {}
        for action in rules.ACTIONS:
            field = f"keymap.{action.name}"
            if field not in typed:
                continue
            try:
                keymap[action.name] = rules.parse_keys(typed[field])
            except Invalid as bad:
                raise PreferenceInvalid(f"{action.label}: {bad.message}", field=field) from None
        patch = {"keymap": keymap}
    except PreferenceInvalid as refusal:
        patch = refusal
    return await _save_group(request, stores, "keymap", typed, patch)


@router.post("/settings/splits", response_class=HTMLResponse)
async def save_splits(request: Request, stores: StoresDep) -> HTMLResponse:
    """The split ratios a new project starts with."""
    typed = await _form_fields(request, "split_ratios.")
    patch = {"split_ratios": {s: _number(typed.get(f"split_ratios.{s}", "")) for s in SPLITS}}
    return await _save_group(request, stores, "splits", typed, patch)


@router.post("/settings/autolabel", response_class=HTMLResponse)
async def save_autolabel(request: Request, stores: StoresDep) -> HTMLResponse:
    """The confidence and IoU the auto-label forms start from."""
    typed = await _form_fields(request, "autolabel.")
    patch = {"autolabel": {k: _number(typed.get(f"autolabel.{k}", "")) for k in ("conf", "iou")}}
    return await _save_group(request, stores, "autolabel", typed, patch)


@router.post("/settings/grid", response_class=HTMLResponse)
async def save_grid(request: Request, stores: StoresDep) -> HTMLResponse:
    """The size of the image grid's tiles."""
    typed = await _form_fields(request, "thumbnail_size")
    patch = {"thumbnail_size": typed.get("thumbnail_size", "")}
    return await _save_group(request, stores, "grid", typed, patch)


@router.post("/settings/reset")
async def reset_settings(request: Request, stores: StoresDep) -> Response:
    """Every preference back to its default."""
    await preference_service.reset_preferences(stores)
    return redirect(request, "/settings?done=reset")


@router.get("/settings/export")
async def export_settings(stores: StoresDep) -> Response:
    """The preferences as a YAML file to download."""
    prefs = await preference_service.get_preferences(stores)
    return Response(
        preference_service.to_yaml(prefs),
        media_type=YAML_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{EXPORT_NAME}"'},
    )


@router.post("/settings/import", response_class=HTMLResponse)
async def import_settings(request: Request, stores: StoresDep) -> Response:
    """Import a YAML file whole; a refusal shows the import form again with why (422)."""
    upload = (await request.form()).get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise PreferenceInvalid("Choose a YAML file to import.", field="file")
        text = await upload.read(preference_service.MAX_YAML_BYTES + 1)
        await preference_service.import_yaml(stores, text)
    except PreferenceInvalid as refusal:
        prefs = await preference_service.get_preferences(stores)
        context = _context(request, prefs, errors={"file": refusal.message})
        return render(request, PAGE, context, fragment="settings/_transfer.html", status_code=422)
    return redirect(request, "/settings?done=imported")


# --- the JSON API ----------------------------------------------------------------------------

KeyName = Annotated[str, StringConstraints(max_length=40)]


class AutolabelPreferences(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    conf: float | None = Field(None, description="Default minimum confidence, 0 … 1.")
    iou: float | None = Field(None, description="Default NMS IoU threshold, 0 … 1.")


class PreferencesUpdate(BaseModel):
    """The preferences to change; a name left out keeps its value. ``keymap`` may name some
    actions only (the others keep their keys); ``autolabel`` one threshold only."""

    model_config = ConfigDict(extra="forbid", strict=True)

    keymap: dict[KeyName, list[KeyName]] | None = Field(
        None,
        max_length=len(rules.ACTIONS),
        description='Action -> its keys (e.g. {"next": ["k"]}); see GET for the actions.',
    )
    split_ratios: dict[KeyName, float] | None = Field(
        None, max_length=3, description="train, val and test, adding up to 1."
    )
    autolabel: AutolabelPreferences | None = None
    thumbnail_size: KeyName | None = Field(None, description="small, medium or large.")


class PreferencesOut(BaseModel):
    """Every preference in force (defaults included)."""

    keymap: dict[str, list[str]]
    split_ratios: dict[str, float]
    autolabel: dict[str, float]
    thumbnail_size: str

    @classmethod
    def of(cls, prefs: Preferences) -> PreferencesOut:
        return cls(**prefs.to_dict())


@api_router.get("/preferences", response_model=PreferencesOut)
async def api_get_preferences(stores: StoresDep) -> PreferencesOut:
    """Every preference in force: the annotator's keymap, the split ratios of new projects,
    the auto-label thresholds and the grid's thumbnail size."""
    return PreferencesOut.of(await preference_service.get_preferences(stores))


@api_router.put("/preferences", response_model=PreferencesOut)
async def api_put_preferences(body: PreferencesUpdate, stores: StoresDep) -> PreferencesOut:
    """Change the preferences named (checked whole: a key conflict, an unknown action or a
    value out of range changes nothing)."""
    patch = body.model_dump(exclude_none=True)
    if "autolabel" in patch and not patch["autolabel"]:
        del patch["autolabel"]
    return PreferencesOut.of(await preference_service.update_preferences(stores, patch))


@api_router.delete("/preferences", response_model=PreferencesOut)
async def api_reset_preferences(stores: StoresDep) -> PreferencesOut:
    """Every preference back to its default."""
    return PreferencesOut.of(await preference_service.reset_preferences(stores))


@api_router.get(
    "/preferences/yaml",
    response_class=Response,
    responses={  # a YAML document of the mapping GET /api/v1/preferences answers
        200: {"content": {YAML_TYPE: {"schema": {"$ref": "#/components/schemas/PreferencesOut"}}}}
    },
)
async def api_export_preferences(stores: StoresDep) -> Response:
    """The preferences as a YAML document (the file the settings page exports)."""
    prefs = await preference_service.get_preferences(stores)
    return Response(preference_service.to_yaml(prefs), media_type=YAML_TYPE)


@api_router.put(
    "/preferences/yaml",
    response_model=PreferencesOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A YAML document like the one GET answers; the names it leaves out "
            "keep their values.",
            "content": {YAML_TYPE: {"schema": {"$ref": "#/components/schemas/PreferencesUpdate"}}},
        }
    },
)
async def api_import_preferences(request: Request, stores: StoresDep) -> PreferencesOut:
    """Import a YAML document whole: any mistake refuses it and changes nothing."""
    text = bytearray()
    async for chunk in request.stream():
        text += chunk
        if len(text) > preference_service.MAX_YAML_BYTES:
            break  # parse_yaml refuses it for its size
    return PreferencesOut.of(await preference_service.import_yaml(stores, bytes(text)))
