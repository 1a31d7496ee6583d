"""Personas of the dataset pages' tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def ada(client, django_user_model):
    """Persona: an experimenter, logged in on `client` (no password: nothing to hash)."""
    user = django_user_model.objects.create_user("ada", "ada@example.org")
    client.force_login(user)
    return user
