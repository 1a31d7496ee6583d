from django.urls import path

from evalsite.reports import views

app_name = "reports"
urlpatterns = [
    path("<str:key>/", views.report_page, name="page"),
    path("<str:key>/recompute/", views.recompute, name="recompute"),
    path("<str:key>/report.json", views.report_json, name="json"),
    path("<str:key>/bundle.zip", views.bundle, name="bundle"),
    path("<str:key>/tables/<slug:name>.<str:fmt>", views.table_download, name="table"),
    path("<str:key>/plots/<slug:name>.svg", views.plot, name="plot"),
]
