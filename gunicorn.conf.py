"""gunicorn's settings for the site, read when gunicorn starts in the checkout (its default
`./gunicorn.conf.py`; elsewhere pass `-c /path/to/checkout/gunicorn.conf.py`).

The site alone decides which peers' X-Forwarded-* headers count (CSN_BEHIND_PROXY and
CSN_TRUSTED_PROXIES, evalsite/trusted_proxy.py). By default gunicorn itself believes
X-Forwarded-Proto / X-Forwarded-Ssl / X-Forwarded-Protocol from loopback peers and marks such a
request HTTPS before Django runs, so a client on the machine could claim HTTPS over plain HTTP
even where the site's settings drop those headers. Trusting no forwarder here leaves the scheme
to the site's settings (Django's SECURE_PROXY_SSL_HEADER, set only behind a proxy).
"""

forwarded_allow_ips = ""
