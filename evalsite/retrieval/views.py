"""Retrieval page (/retrieval/), JSON API (/retrieval/api/search) and blind audio by token.

The page works without JavaScript: the form submits, the server renders the top-k lists with
<audio> players. The API answers the same search as JSON (GET with clip=..., or POST with an
uploaded file `audio`); errors are {"error": "..."} with a 4xx/5xx status, a failed CSRF check
(403) and a wrong method (405) included: the API does its own CSRF check, since Django's
middleware would answer those with an HTML page.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePath
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from csn_model import CONDITIONS
from evalsite.retrieval import query
from evalsite.stimuli.models import Clip
from evalsite.stimuli.serving import serve_audio

# [choice] Pieces the page lists at once: a catalogue's whole list made a page of 20,000
# <option>s (1 MB) at 20,000 clips; more are found by part of a name (the q field).
PIECE_LIST_MAX = 100


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
    sources = _list_pieces(context, params)
    uploaded = request.FILES.get("audio")
    status = 200
    # A GET opens the page, or shows a catalogue (Show catalogue) or the pieces found (Find);
    # a POST is a search, which names what is missing when neither a piece nor a file was
    # given. A GET with one of the catalogue's pieces (a link to a search) searches too.
    if request.method == "POST" or uploaded or _own_piece(params.get("clip"), context["clips"]):
        try:
            context["answer"] = query.search(
                request.user, {**params.dict(), "catalogue": chosen}, uploaded
            )
        except query.QueryError as exc:
            context["error"], status = str(exc), exc.status
        else:
            answer = context["answer"]
            context["query_source"] = sources.get(answer["query"].get("dataset", ""), "")
            if uploaded and params.get("clip"):  # the upload is the query; say the piece was not
                context["unused_piece"] = _piece_name(params["clip"], context["clips"])
            context["lists"] = [
                (c, answer["method"][c], [{**h, "source": sources.get(h["dataset"], "")}
                                          for h in hits])
                for c, hits in answer["results"].items()
            ]  # fmt: skip
    return render(request, "retrieval/search.html", context, status=status)


def _list_pieces(context: dict[str, Any], params) -> dict[str, str]:
    """Put the piece list in the context (pieces with their dataset's label, how many match
    the find field q, how many are listed); returns the catalogue's dataset labels."""
    clips = context["clips"]
    sources = dataset_labels(clips.order_by().values_list("dataset", flat=True).distinct())
    context["q"] = (params.get("q") or "").strip()
    pieces, context["matching"] = piece_list(clips, context["q"], params.get("clip"))
    context["pieces"] = [(c, sources[c.dataset]) for c in pieces]
    context["listed"] = min(context["matching"], PIECE_LIST_MAX)
    return sources


def piece_list(clips, q: str, chosen: str | None) -> tuple[list[Clip], int]:
    """(the clips the page lists, how many match q): of the catalogue's pieces (clips), those
    whose piece, clip or dataset name holds q (any case; all without q), the first
    PIECE_LIST_MAX by piece and name, and before them the chosen clip where they leave it out,
    so that the form still sends it."""
    if q:
        clips_found = clips.filter(
            Q(piece__icontains=q) | Q(name__icontains=q) | Q(dataset__icontains=q)
        )
    else:
        clips_found = clips
    listed = list(clips_found.order_by("piece", "name", "pk")[:PIECE_LIST_MAX])
    matching = clips_found.count() if len(listed) == PIECE_LIST_MAX else len(listed)
    if chosen and chosen.isdigit() and int(chosen) not in {c.pk for c in listed}:
        listed[:0] = clips.filter(pk=int(chosen))
    return listed, matching


def dataset_labels(datasets: Iterable[str]) -> dict[str, str]:
    """What the page writes beside a piece to name its dataset, for each of datasets (the
    catalogue's): nothing where the catalogue holds one dataset, else the dataset folder's name,
    or its whole path where two folders share a name. Two datasets name their tracks alike
    (Track00001...), so without it two pieces would read the same. Uploads (no dataset) get
    nothing: their clip name tells them apart."""
    found = set(datasets)
    if len(found - {""}) < 2:
        return dict.fromkeys(found, "")
    names = [PurePath(d).name for d in found if d]
    return {d: (PurePath(d).name if names.count(PurePath(d).name) == 1 else d) if d else ""
            for d in found}  # fmt: skip


def _piece_name(raw: str, clips) -> str:
    """The chosen piece as the form lists it (its piece, else its name), else the id sent."""
    clip = clips.filter(pk=int(raw)).first() if raw.isdigit() else None
    return (clip.piece or clip.name) if clip else raw


def _own_piece(raw: str | None, clips) -> bool:
    """Whether a GET's clip is one of the chosen catalogue's pieces: a GET naming another
    catalogue's piece (a link or bookmark made when switching the catalogue sent the whole
    form) starts no search. A clip that is not an id does search, which names it."""
    if not raw:
        return False
    try:
        return clips.filter(pk=int(raw)).exists()
    except ValueError:
        return True


class _JsonCsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check, answering a refusal as the API's JSON error."""

    def _reject(self, request: HttpRequest, reason: str) -> JsonResponse:
        return JsonResponse(
            {"error": f"CSRF check failed: {reason}; send the csrftoken cookie's value as the "
                      "X-CSRFToken header or the csrfmiddlewaretoken field"},
            status=403,
        )  # fmt: skip


_csrf_check = _JsonCsrfCheck(lambda request: HttpResponse())


def _csrf_checked(request: HttpRequest) -> HttpResponse:
    """Stands for the API view in the CSRF check (never called)."""
    raise NotImplementedError


@csrf_exempt  # checked below, after the method, so that each refusal is JSON
def api_search(request: HttpRequest) -> HttpResponseBase:
    if request.method not in ("GET", "POST"):
        error = f"method {request.method}: expected GET or POST"
        refusal = JsonResponse({"error": error}, status=405)
        refusal["Allow"] = "GET, POST"
        return refusal
    if not request.user.is_authenticated:
        return JsonResponse({"error": "log in first (session cookie)"}, status=401)
    # the callback given must not be the csrf_exempt view, which the middleware would let pass
    refused = _csrf_check.process_view(request, _csrf_checked, (), {})
    if refused is not None:
        return refused
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
