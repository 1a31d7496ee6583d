"""Who may see and change a study.

A study is visible to its owner, to the researchers it is shared with, and to superusers. Anyone
else gets a 404 (not a 403), so the existence of other researchers' studies is not revealed.
Changing who a study is shared with, and deleting it, is for the owner (and superusers) only.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from evalsite.studies.models import Study


def visible_studies(user) -> QuerySet[Study]:
    """The studies `user` may open: owned, shared with them, or all for a superuser."""
    if not user.is_authenticated:
        return Study.objects.none()
    if user.is_superuser:
        return Study.objects.all()
    return Study.objects.filter(Q(owner=user) | Q(shared_with=user)).distinct()


def get_visible_study(user, pk: int) -> Study:
    """The study `pk` if `user` may see it; Http404 otherwise (also for studies that exist)."""
    try:
        return visible_studies(user).get(pk=pk)
    except Study.DoesNotExist:
        raise Http404("No such study.") from None


def is_owner(user, study: Study) -> bool:
    """Owner-only actions: sharing, choosing the study's catalogue, and deleting."""
    return user.is_authenticated and (user.is_superuser or study.owner_id == user.pk)
