"""The status page of ``posactors run --http-port`` (Starlette, Jinja2, served by uvicorn)."""
