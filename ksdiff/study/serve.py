"""`ksdiff study serve`: a small collection server for lab studies (Flask).

It serves the study's site/ as a static host would, and takes each rater's ratings when they press
"Send" on the last page: a file that `study score` would reject (another study's id, an unknown rater
slot, not a ratings file) is refused with the reason, which the page shows; an accepted one is written
to studies/{name}/ratings/ under a new name (a rater who sends twice keeps both; scoring counts each
item once). Werkzeug's server is meant for a lab's own network and a handful of raters at a time, not
for the open internet: there, upload site/ to a static host and collect the downloaded files.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from flask import Flask, jsonify, request, send_from_directory

from ksdiff.io.files import atomic_write_bytes
from ksdiff.study.ratings import file_problem
from ksdiff.study.score import load_design

log = logging.getLogger(__name__)
MAX_BYTES = 8 << 20  # a ratings file of thousands of items is well under 1 MB


def create_app(study: str | Path) -> Flask:
    root = Path(study)
    design = load_design(root)
    site, out = (root / "site").resolve(), root / "ratings"
    out.mkdir(exist_ok=True)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BYTES

    @app.get("/")
    def index():
        return send_from_directory(site, "index.html")

    @app.get("/<path:name>")
    def static_file(name):  # byte ranges and conditional requests: werkzeug's, as video players need
        return send_from_directory(site, name)

    @app.post("/ratings")
    def ratings():
        doc = request.get_json(silent=True)
        why = file_problem(doc, design) if doc is not None else "the request body is not JSON"
        if why:
            log.warning("refused ratings from %s: %s", request.remote_addr, why)
            return jsonify(ok=False, reason=why), 400
        name = f"ratings_{design['study_id']}_{doc['rater_id']}_{time.strftime('%Y%m%dT%H%M%S')}_{time.time_ns() % 10**9:09d}.json"
        atomic_write_bytes(out / name, json.dumps(doc, indent=1).encode())
        log.info("ratings of %s (%d items) -> %s", doc["rater_id"], len(doc["ratings"]), out / name)
        return jsonify(ok=True, file=name)

    return app


def serve_study(cfg: dict, study: str, host: str = "127.0.0.1", port: int = 8000) -> int:
    app = create_app(study)
    log.info("study %s at http://%s:%d/ (ratings -> %s)", load_design(Path(study))["study_id"], host, port,
             Path(study) / "ratings")
    app.run(host=host, port=port, threaded=True)
    return 0
