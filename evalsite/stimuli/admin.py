from django.contrib import admin

from evalsite.stimuli.models import Catalogue, Clip


@admin.register(Catalogue)
class CatalogueAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "created_at")
    search_fields = ("name",)


@admin.register(Clip)
class ClipAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "piece", "catalogue", "status", "duration_s", "loudness_lufs")
    list_filter = ("status", "catalogue", "split")
    search_fields = ("name", "piece", "sha256", "token")
    readonly_fields = ("token", "sha256", "created_at")
