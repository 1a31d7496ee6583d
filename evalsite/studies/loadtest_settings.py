"""Settings of the gunicorn that `manage.py loadtest` starts: the site's own, plus the bare-write
reference view (loadtest_views.py) and the table it writes, named by the run, with no limit on
new participants per address."""

from evalsite.env import env_str
from evalsite.settings import *  # noqa: F403 (the site's settings, unchanged but for the URLconf)

ROOT_URLCONF = "evalsite.studies.loadtest_urls"
# No limit on new participants per address (entry_limit.py): the benchmark enters hundreds of
# participants from 127.0.0.1 within seconds, which the limit exists to refuse.
CSN_ENTRY_LIMIT = 0
CSN_LOADTEST_WRITE_TABLE = env_str("CSN_LOADTEST_WRITE_TABLE", "loadtest_bare_write")
