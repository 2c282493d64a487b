"""`lfsd serve`: an HTTP endpoint on Ray Serve that serves `models:/<name>@production` and follows the alias.

- request: the body of POST /generate: its shape, params.yaml limits, reference images that are images
- version_checks: a request against the version that draws it (concepts, erased ones, tokenizer, size)
- loaded: one version in memory (loaded the way lfsd loads any) and the one denoising batch it draws
- batch: merged requests drawn as batches of one version, grouped by (steps, guidance)
- follow: the alias followed: poll, load + check, swap one reference; erased versions never load
- page: the HTML page at /
- deployment: the Ray Serve deployment with its FastAPI routes (/generate, /health, /version, /, /docs)
- service: Ray and Ray Serve started for a workspace, stopped on SIGINT / SIGTERM; `app`, what a RayService imports
"""
