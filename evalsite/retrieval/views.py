"""Retrieval page (/retrieval/), JSON API (/retrieval/api/search) and blind audio by token.

The page works without JavaScript: the form submits, the server renders the top-k lists with
<audio> players. The API answers the same search as JSON (GET with clip=..., or POST with an
uploaded file `audio`); errors are {"error": "..."} with a 4xx/5xx status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from csn_model import CONDITIONS
from evalsite.retrieval import query
from evalsite.stimuli.models import Clip
from evalsite.stimuli.serving import serve_audio


@login_required
@require_http_methods(["GET", "POST"])
def page(request: HttpRequest) -> HttpResponse:
    catalogues = list(query.visible_catalogues(request.user).order_by("name"))
    params = request.POST if request.method == "POST" else request.GET
    chosen = params.get("catalogue") or (str(catalogues[0].pk) if catalogues else "")
    context: dict[str, Any] = {
        "catalogues": catalogues,
        "chosen": chosen,
        "clips": Clip.objects.none(),
        "params": params,
        "instruments": CONDITIONS,
    }
    try:
        catalogue_id = query.parse_id({"catalogue": chosen}, "catalogue")
        if catalogue_id is not None and catalogue_id not in {c.pk for c in catalogues}:
            # Another user's or no catalogue: say so, as the API does, not an empty list.
            raise query.QueryError(f"catalogue={catalogue_id}: no such catalogue", status=404)
    except query.QueryError as exc:
        context["error"] = str(exc)
        return render(request, "retrieval/search.html", context, status=exc.status)
    if catalogue_id is not None:
        context["clips"] = Clip.objects.filter(
            catalogue_id=catalogue_id, catalogue__in=catalogues, status=Clip.Status.READY
        ).exclude(meta__has_key="kind")
    uploaded = request.FILES.get("audio")
    status = 200
    if uploaded or params.get("clip"):
        try:
            context["answer"] = query.search(
                request.user, {**params.dict(), "catalogue": chosen}, uploaded
            )
        except query.QueryError as exc:
            context["error"], status = str(exc), exc.status
        else:
            answer = context["answer"]
            context["lists"] = [
                (c, answer["method"][c], hits) for c, hits in answer["results"].items()
            ]
    return render(request, "retrieval/search.html", context, status=status)


@require_http_methods(["GET", "POST"])
def api_search(request: HttpRequest) -> JsonResponse:
    if not request.user.is_authenticated:
        return JsonResponse({"error": "log in first (session cookie)"}, status=401)
    params = request.POST if request.method == "POST" else request.GET
    try:
        answer = query.search(request.user, params.dict(), request.FILES.get("audio"))
    except query.QueryError as exc:
        return JsonResponse({"error": str(exc)}, status=exc.status)
    return JsonResponse(answer)


@login_required
def audio(request: HttpRequest, token: str) -> HttpResponseBase:
    clip = Clip.objects.filter(
        token=token, catalogue__in=query.visible_catalogues(request.user)
    ).first()
    if clip is None or not clip.file:
        raise Http404("No such clip.")
    return serve_audio(request, Path(clip.file.path))
