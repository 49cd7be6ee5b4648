"""The Neuroglancer viewer, served offline from the ``neuroglancer`` wheel.

The wheel's client is Neuroglancer's Python-integration build: it must run
under ``/v/<token>/`` and keeps a server-sent-events stream open at
``/events/<token>`` for a Python kernel to push states. We serve its page at
``/`` (and ``/v/<token>/``) with one script in front that moves the URL to
``/v/axonlink/`` (keeping any ``#!`` state, or filling in the default state of
the first dataset) and gives the client a stand-in for that stream: axonlink
pushes nothing, and an open stream would hold a server thread per open tab.
The rest of the small protocol we answer ourselves: state/action posts are
accepted and dropped, and ``/events/<token>`` itself, for a page or script
that still asks, answers at once and asks it not to come back.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from flask import Blueprint, Response, send_from_directory

from frontend_config import default_state

from .. import auth, endpoints, hosts
from ..errors import json_error
from ..request_input import json_body
from . import VIEWER_TOKEN, has_graph, has_synapses

blueprint = Blueprint("viewer", __name__)

CLIENT_URL_PREFIX = "/static/neuroglancer/"


@lru_cache(maxsize=1)
def client_dir() -> Path:
    return Path(str(resources.files("neuroglancer") / "static" / "client"))


@lru_cache(maxsize=1)
def viewer_html() -> str:
    """The wheel's index.html with asset paths made absolute and our config script first.

    The wheel ships no icon; an empty inline one keeps browsers from asking for
    ``/favicon.ico`` (a 404 logged as a console error on every load).
    """
    html = (client_dir() / "index.html").read_text()
    html = re.sub(r'(src|href)="(?!/|https?:)([^"]+)"', rf'\1="{CLIENT_URL_PREFIX}\2"', html)
    head = '<head><script src="/viewer-config.js"></script><link rel="icon" href="data:,">'
    return html.replace("<head>", head, 1)


def viewer_root():
    return _page()


def viewer_page(token: str):
    return _page()


def _page():
    return Response(viewer_html(), mimetype="text/html", headers={"Cache-Control": "no-cache"})


def viewer_config():
    base = hosts.base_url()
    datasets = auth.visible_datasets()
    state = (
        default_state(datasets[0], base, graphene=has_graph(datasets[0].name), synapses=has_synapses(datasets[0].name))
        if datasets
        else None
    )
    servers = {"axonlink": {"url": f"{base}/nglstate/api/v1/post", "default": True}}
    script = _CONFIG_SCRIPT % {
        "token": json.dumps(VIEWER_TOKEN),
        "state": json.dumps(state),
        "servers": json.dumps(servers),
    }
    return Response(script + viewer_ui_script(), mimetype="text/javascript", headers={"Cache-Control": "no-cache"})


_CONFIG_SCRIPT = """// axonlink: runs before the Neuroglancer client loads.
// The client shows its Share button when STATE_SERVERS is defined: it posts to our CAVE-style state service.
var STATE_SERVERS = %(servers)s;
(function () {
  var token = %(token)s;
  var defaultState = %(state)s;
  var hash = location.hash;
  var jsonUrl = new URLSearchParams(location.search).get("json_url");  // caveclient's link form
  if ((hash === "" || hash === "#" || hash === "#!") && jsonUrl) {
    hash = "#!" + jsonUrl;
  }
  if ((hash === "" || hash === "#" || hash === "#!") && defaultState) {
    hash = "#!" + encodeURIComponent(JSON.stringify(defaultState));
  }
  var path = /\\/v\\/[^/]+/.test(location.pathname) ? location.pathname : "/v/" + token + "/";
  if (path !== location.pathname || hash !== location.hash) {
    history.replaceState(null, "", path + location.search + hash);
  }
})();
// The client keeps an EventSource open on /events/<token> for pushes from a Python kernel. axonlink pushes
// nothing, and an open stream would hold a server thread per tab: same-origin /events/ URLs get a stand-in
// that reports itself open (after the client has set its handlers, which hides "Connecting to Python server")
// and never touches the network. Any other URL gets the real EventSource.
(function () {
  var RealEventSource = window.EventSource;
  if (typeof RealEventSource !== "function") {
    return;
  }
  function isViewerStream(url) {
    try {
      var parsed = new URL(String(url), location.href);
      return parsed.origin === location.origin && parsed.pathname.indexOf("/events/") === 0;
    } catch (error) {
      return false;
    }
  }
  class QuietEventSource extends EventTarget {
    constructor(url) {
      super();
      this.url = new URL(String(url), location.href).href;
      this.withCredentials = false;
      this.readyState = 0;
      this.onopen = this.onmessage = this.onerror = null;
      setTimeout(() => {
        if (this.readyState !== 0) {
          return;
        }
        this.readyState = 1;
        var event = new Event("open");
        this.dispatchEvent(event);
        if (typeof this.onopen === "function") {
          this.onopen(event);
        }
      }, 0);
    }
    close() {
      this.readyState = 2;
    }
  }
  function EventSource(url, init) {
    return isViewerStream(url) ? new QuietEventSource(url) : new RealEventSource(url, init);
  }
  EventSource.prototype = RealEventSource.prototype;
  [QuietEventSource, EventSource].forEach(function (type) {
    type.CONNECTING = 0;
    type.OPEN = 1;
    type.CLOSED = 2;
  });
  window.EventSource = EventSource;
})();
"""


@lru_cache(maxsize=1)
def viewer_ui_script() -> str:
    return resources.files("frontend_config").joinpath("viewer_ui.js").read_text()


def client_file(filename: str):
    return send_from_directory(client_dir(), filename, max_age=365 * 24 * 3600)


def viewer_events(token: str):
    """No stream: 204, which tells an EventSource to stop reconnecting (the HTML standard's server-sent events).

    The bundled page never asks (its config script gives the client a
    stand-in). A page loaded before that, or a script, gets its answer at
    once: no request here holds a thread. Not a finite 200 stream: the
    client's ``onopen`` resets its back-off and its ``onerror`` reconnects
    within a second, so an old tab would ask every second; refused, it backs
    off to once in 30 s.
    """
    return Response(status=204, headers={"Cache-Control": "no-store"})


def favicon():
    return Response(status=204, headers={"Cache-Control": "public, max-age=86400"})


def viewer_state(token: str):
    message = json_body(required=False)
    if not isinstance(message, dict) or "g" not in message or "c" not in message:
        return json_error(400, "expected {c, g, pg, s} from the Neuroglancer client")
    return {"g": f"{message['c']}/{message['g']}"}


def viewer_action(token: str):
    return Response(status=204)


def viewer_credentials(token: str):
    return json_error(403, "axonlink's data sources need no credentials from the viewer")


endpoints.register(
    blueprint,
    endpoints.VIEWER,
    {
        "viewer_root": viewer_root,
        "viewer_page": viewer_page,
        "viewer_config": viewer_config,
        "client_file": client_file,
        "favicon": favicon,
        "viewer_events": viewer_events,
        "viewer_state": viewer_state,
        "viewer_action": viewer_action,
        "viewer_credentials": viewer_credentials,
    },
)
