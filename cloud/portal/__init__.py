"""The web portal: server-rendered pages served by the cloud service itself, under ``/portal``.

How it fits together (Datasette's pattern: every page has a JSON twin):

- ``page.Page`` describes one page: its path, its title, the permission it needs and a
  ``load(request, conn)`` coroutine returning a pydantic model. ``page_routes`` serves the model
  as HTML at ``path`` (through the Jinja2 template ``templates/pages/<name>.html``) and as JSON at
  ``path + ".json"``. ``load`` reads through the same tenant-scoped query functions as the
  ``/api/v1`` routes (never its own SQL) on the connection of ``tenant_transaction``.
- ``pages/`` holds one module per page, each exposing ``page: Page`` (and, for forms,
  ``routes: web.RouteTableDef`` of its POST actions). ``pages.PAGES`` lists them in navigation
  order: **a new page is one module plus one entry there**; the navigation shows it to roles
  whose permission allows it.
- ``guard`` authenticates pages by the session cookie (a missing or ended session redirects to
  the login page) and checks the ``csrf_token`` field of every form against the session's token.
- ``security`` sets the security headers (a CSP without ``unsafe-inline``) and
  ``Cache-Control: no-store`` on everything under ``/portal`` but the static files.
- ``static/`` holds our CSS and small vanilla JS (progressive enhancement: pages work with JS
  off; live parts listen to ``/api/v1/live``); ``templates/base.html`` is the layout with the
  skip link and the role-filtered navigation.
- ``setup.setup_portal(app)`` wires Jinja2, the static files and every page into the app.

Adding a page: write ``pages/<name>.py`` with ``page = Page(...)`` (and ``routes`` for its
forms), its template ``templates/pages/<name>.html`` extending ``base.html`` (``charts.html``
has the SVG bar chart with its table twin), add ``<name>.page`` to ``PAGES`` (and its
``routes`` to ``ACTIONS``), then re-run ``pip install -e .``: the strict editable install
links each file, so new modules and templates are invisible until then. Browser tests use the
fixtures of ``tests/cloud/portal/conftest.py`` and ``browser_checks.check_page`` (axe, a
screenshot, the skip link).
"""
