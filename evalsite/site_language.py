"""Which language a page is in. The participant side (the study link, the participant's pages and
sounds, and what they refuse or fail with) speaks the participant's language, chosen there
(participant_render.page_language). The researchers' pages are written in English, so they are
English throughout: with a Japanese browser, LocaleMiddleware's language would otherwise put
`lang="ja"`, a Japanese Content-Language and the site navigation in Japanese on an English page.
The login page and its lockout page are translated whole (navigation included), so they follow
the browser as before."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import translation

# The participant side's views: a researcher's preview of a draft study is these views too, and
# shows what its participants would see.
PARTICIPANT_VIEWS = {
    "studies:entry",
    "studies:participant",
    "studies:audio",
    "studies:screening_audio",
    "studies:calibration_audio",
}
# Views in the browser's language: the participant side, and the login page (and the lockout
# page django-axes puts in its place).
BROWSER_LANGUAGE_VIEWS = PARTICIPANT_VIEWS | {"login"}


def in_english(request: HttpRequest) -> bool:
    """Whether the request is for a researcher's page: resolved to a view outside
    BROWSER_LANGUAGE_VIEWS. A request that resolved to nothing is not (the 404 page decides for
    itself: views.page_not_found)."""
    match = getattr(request, "resolver_match", None)
    return match is not None and match.view_name not in BROWSER_LANGUAGE_VIEWS


class ResearcherPagesInEnglish:
    """After LocaleMiddleware, which activated the browser's language: English for a request to a
    researcher's page (`in_english`), so its text, `lang`, navigation and Content-Language agree.
    Before CsrfViewMiddleware, whose refusal (views.csrf_failure) is then English there too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        if in_english(request):
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
