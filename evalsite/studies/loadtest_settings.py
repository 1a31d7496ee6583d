"""Settings of the gunicorn that `manage.py loadtest` starts: the site's own, plus the bare-write
reference view (loadtest_views.py) and the table it writes, named by the run."""

from evalsite.env import env_str
from evalsite.settings import *  # noqa: F403 (the site's settings, unchanged but for the URLconf)

ROOT_URLCONF = "evalsite.studies.loadtest_urls"
CSN_LOADTEST_WRITE_TABLE = env_str("CSN_LOADTEST_WRITE_TABLE", "loadtest_bare_write")
