from django.urls import path

from evalsite.studies import experimenter as ex
from evalsite.studies import experimenter_stimuli as ex_stimuli
from evalsite.studies import experimenter_trials as ex_trials
from evalsite.studies import participant as pt
from evalsite.studies import participant_audio as pt_audio

app_name = "studies"
urlpatterns: list = [
    # Participant side: study link, the participant's page, blind audio (docs/site.md).
    path("s/<str:slug>/", pt.entry, name="entry"),
    path("p/<str:token>/", pt.page, name="participant"),
    path("p/<str:token>/audio/<int:slot>/<str:part>", pt_audio.audio, name="audio"),
    path(
        "p/<str:token>/screening/<int:n>/<int:draw>",
        pt_audio.screening_audio,
        name="screening_audio",
    ),
    path("p/<str:token>/calibration", pt_audio.calibration_audio, name="calibration_audio"),
    # Experimenter side (login required): dashboard, study pages, stimuli, trials, export.
    path("studies/", ex.dashboard, name="dashboard"),
    path("studies/new/", ex.study_create, name="study_create"),
    path("studies/<int:pk>/", ex.study_detail, name="study_detail"),
    path("studies/<int:pk>/edit/", ex.study_edit, name="study_edit"),
    path("studies/<int:pk>/status/", ex.study_status, name="study_status"),
    path("studies/<int:pk>/clips/", ex_stimuli.clips, name="clips"),
    path("studies/<int:pk>/clips/remove/", ex_stimuli.clips_remove, name="clips_remove"),
    path("studies/<int:pk>/import/", ex_stimuli.dataset_import, name="dataset_import"),
    path("studies/<int:pk>/trials/", ex_trials.trials, name="trials"),
    path("studies/<int:pk>/trials/add/", ex_trials.trial_add, name="trial_add"),
    path("studies/<int:pk>/trials/csv/", ex_trials.trials_csv, name="trials_csv"),
    path("studies/<int:pk>/trials/random/", ex_trials.trials_random, name="trials_random"),
    path("studies/<int:pk>/trials/repeats/", ex_trials.trials_repeats, name="trials_repeats"),
    path("studies/<int:pk>/trials/delete/", ex_trials.trials_delete, name="trials_delete"),
    path("studies/<int:pk>/progress/", ex.study_progress, name="progress"),
    path("studies/<int:pk>/export/", ex.export_index, name="export"),
    path("studies/<int:pk>/export/<str:name>", ex.export_download, name="export_file"),
]
