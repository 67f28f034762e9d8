"""The web console: the pages (agent desktop, wallboard) served by the worker's HTTP port behind the API's
roles (``pages.py``), their words in English and Vietnamese (``i18n.py``) and their files: ours in
``static/``, the third-party ones from the npm registry (``assets.py``, ``web/package-lock.json``)."""
