"""The Schedy HTTP service (``schedy serve``): REST resources over any store, token auth,
an OpenAPI document and a dashboard. See docs/http.md.

The web stack (Starlette, uvicorn) is imported only by :mod:`schedy.server.app`, so the
token store (:mod:`schedy.server.tokens`) stays cheap for the CLI.
"""
