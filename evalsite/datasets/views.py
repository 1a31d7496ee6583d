"""The dataset listing: tracks per split with tempo, key, programs and playable stems.

Experimenter pages: every view needs a login (the listing shows the server's dataset roots and
serves every stem)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_GET

from evalsite.datasets import catalog
from evalsite.datasets.audio import audio_response, resolve_inside

PER_PAGE = 25  # tracks per split on one page (real Slakh has 1,500 in train)


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """Every dataset, each with the first page of tracks of every split."""
    sets = [_dataset_context(ref, request, page=1) for ref in catalog.datasets()]
    return render(request, "datasets/index.html", {"datasets": sets})


@login_required
@require_GET
def detail(request: HttpRequest, slug: str) -> HttpResponse:
    ref = catalog.find(slug)
    if ref is None:
        raise Http404("no such dataset")
    page, only = request.GET.get("page", "1"), request.GET.get("split")
    names = [split for split, _folders in catalog.split_names(ref)]
    if only and only not in names:
        error = f"split={only!r}: no such split in {ref.slug}; expected one of {', '.join(names)}"
        context = {"dataset": {"slug": ref.slug, "splits": []}, "error": error}
        return render(request, "datasets/detail.html", context, status=404)
    ctx = _dataset_context(ref, request, page=page, only=only)
    return render(request, "datasets/detail.html", {"dataset": ctx})


@login_required
@require_GET
def audio(request: HttpRequest, slug: str, relpath: str) -> HttpResponseBase:
    ref = catalog.find(slug)
    if ref is None:
        raise Http404("no such dataset")
    return audio_response(request, resolve_inside(ref.root, relpath))


def _dataset_context(ref, request, page, only: str | None = None) -> dict:
    splits = []
    for split, folders in catalog.split_names(ref):
        if only and split != only:
            continue
        pages = Paginator(folders, PER_PAGE)
        current = pages.get_page(page)
        rows = [catalog.describe(ref, split, f) for f in current.object_list]
        splits.append({"name": split, "count": len(folders), "page": current, "tracks": rows})
    return {
        "slug": ref.slug,
        "root": str(ref.root),
        "splits": splits,
        "synth": catalog.manifest(ref),
    }
