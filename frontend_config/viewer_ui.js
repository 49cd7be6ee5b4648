// axonlink: small additions around the stock Neuroglancer client (no change to the client itself).
// - a "Short link" button: stores the current view and copies <origin>/s/<id>
// - when opened from a share link (?link=<id>&as=was|now): a banner saying which version is shown
// - who is signed in (the session cookie is HttpOnly: we ask /api/v1/me), with sign-in / sign-out links
// - graphene layers follow edits made elsewhere (the API, another viewer, an undo): every few seconds the
//   selected roots are checked with is_latest_roots and retired ones swapped for their current roots
// - an "Undo my last edit" button for signed-in users on a graphene layer of this server
// - requests that change something and go to this server say their body is JSON: the stock client posts
//   merges, splits and states as text/plain, which the server refuses from a signed-in browser (a
//   cross-site form could send text/plain too)
(function () {
  var realFetch = window.fetch;
  window.fetch = function (input, init) {
    var method = ((init && init.method) || (input && input.method) || "GET").toUpperCase();
    var url = typeof input === "string" || input instanceof URL ? String(input) : input && input.url;
    if (init && typeof init.body === "string" && method !== "GET" && method !== "HEAD" && url &&
        new URL(url, location.href).origin === location.origin) {
      var headers = new Headers(init.headers || {});
      if (!headers.has("Content-Type")) {
        headers.set("Content-Type", "application/json");
        init = Object.assign({}, init, {headers: headers});
      }
    }
    return realFetch.call(this, input, init);
  };
})();
(function () {
  function el(tag, style, text) {
    var node = document.createElement(tag);
    node.setAttribute("style", style);
    if (text) node.textContent = text;
    return node;
  }
  var boxStyle = "position:fixed;z-index:1000;font:12px sans-serif;color:#fff;background:rgba(20,20,20,.85);" +
    "border:1px solid #555;border-radius:3px;padding:4px 8px;";

  function shortLinkButton() {
    var button = el("button", boxStyle + "left:8px;bottom:8px;cursor:pointer;", "Short link");
    button.id = "axonlink-short-link";
    button.title = "Store this view and copy a short link to it";
    var output = el("input", boxStyle + "left:96px;bottom:8px;width:320px;display:none;");
    output.id = "axonlink-short-link-url";
    output.readOnly = true;
    button.addEventListener("click", function () {
      if (!window.viewer) return;
      fetch("/api/v1/states", {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify(window.viewer.state.toJSON())})
        .then(function (r) { return r.json().then(function (body) { if (!r.ok) throw body; return body; }); })
        .then(function (body) {
          output.value = body.short_url;
          output.style.display = "block";
          output.select();
          if (navigator.clipboard) navigator.clipboard.writeText(body.short_url).catch(function () {});
        })
        .catch(function (error) {
          output.value = "Could not store the view: " + ((error && error.message) || error);
          output.style.display = "block";
        });
    });
    document.body.appendChild(button);
    document.body.appendChild(output);
  }

  function modeBanner() {
    var params = new URLSearchParams(location.search);
    var link = params.get("link"), mode = params.get("as");
    if (!link || (mode !== "was" && mode !== "now")) return;
    var banner = el("div", boxStyle + "left:50%;transform:translateX(-50%);bottom:8px;");
    banner.id = "axonlink-link-mode";
    banner.dataset.mode = mode;
    document.body.appendChild(banner);
    fetch("/api/v1/states/" + encodeURIComponent(link) + "/info").then(function (r) { return r.json(); })
      .then(function (info) {
        var when = new Date(info.created).toISOString().replace("T", " ").slice(0, 16) + " UTC";
        var other = mode === "was" ? "now" : "was";
        banner.textContent = (mode === "was"
          ? "Shown as it was when shared (" + when + ")" + (info.changed_since ? "; edited since. " : ". ")
          : "Shown as it is now (shared " + when + "). ");
        var a = el("a", "color:#8cf;", other === "now" ? "Show as it is now" : "Show as it was");
        a.href = "/s/" + encodeURIComponent(link) + "?as=" + other;
        banner.appendChild(a);
      })
      .catch(function () { banner.textContent = "Shown " + (mode === "was" ? "as it was" : "as it is now"); });
  }

  function userBadge() {
    // one line, whatever the number of datasets: roles listed when few, counted (all in the tooltip) when many
    var badge = el("div", boxStyle + "right:8px;bottom:8px;max-width:40vw;white-space:nowrap;overflow:hidden;" +
                   "text-overflow:ellipsis;");
    badge.id = "axonlink-user";
    document.body.appendChild(badge);
    fetch("/api/v1/me", {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (me) {
      var names = Object.keys(me.roles || {});
      var all = names.map(function (d) { return d + ": " + me.roles[d]; }).join(", ");
      var roles = names.length <= 2 ? all : "roles on " + names.length + " datasets";
      badge.dataset.user = me.user;
      badge.title = all;
      badge.textContent = me.authenticated ? "Signed in as " + me.user + (roles ? " (" + roles + ") " : " ")
                                           : "Viewing without signing in ";
      undoButton(me);
      var a = el("a", "color:#8cf;", me.authenticated ? "Sign out" : "Sign in to proofread");
      a.href = "/login";
      if (me.authenticated) {
        a.addEventListener("click", function (event) {
          event.preventDefault();
          fetch("/api/v1/session", {method: "DELETE", credentials: "same-origin"}).then(function () {
            location.reload();
          });
        });
      }
      badge.appendChild(a);
    }).catch(function () { badge.remove(); });
  }

  var FOLLOW_SECONDS = 3;
  var GRAPHENE = /^graphene:\/\/(.*)\/segmentation\/table\/([^/]+)\/?$/;

  function grapheneLayers() {
    // [{table, segments: the layer's segmentation group state}] for graphene layers served by this origin
    if (!window.viewer) return [];
    var found = [];
    viewer.layerManager.managedLayers.forEach(function (managed) {
      var layer = managed.layer;
      if (!layer || !layer.dataSources || !layer.displayState || !layer.displayState.segmentationGroupState) return;
      layer.dataSources.forEach(function (source) {
        var match = GRAPHENE.exec((source.spec && source.spec.url) || "");
        if (match && match[1] === location.origin) {
          found.push({table: match[2], segments: layer.displayState.segmentationGroupState.value});
        }
      });
    });
    return found;
  }

  function postJson(url, body) {
    return fetch(url, {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
                       body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (b) { if (!r.ok) throw b; return b; }); });
  }

  function followEdits() {
    grapheneLayers().forEach(function (found) {
      var selected = Array.from(found.segments.selectedSegments).map(String);
      if (!selected.length) return;
      postJson("/segmentation/api/v1/table/" + found.table + "/is_latest_roots", {node_ids: selected})
        .then(function (answer) {
          selected.forEach(function (root, i) {
            if (answer.is_latest[i]) return;
            fetch("/api/v1/datasets/" + found.table + "/roots/" + root + "/latest", {credentials: "same-origin"})
              .then(function (r) { return r.json(); })
              .then(function (latest) {
                if (!latest.latest_roots) return;
                found.segments.selectedSegments.delete(BigInt(root));
                latest.latest_roots.forEach(function (id) {
                  found.segments.selectedSegments.add(BigInt(id));
                  found.segments.visibleSegments.add(BigInt(id));
                });
              });
          });
        }).catch(function () {});
    });
  }

  function undoButton(me) {
    if (!me.authenticated) return;
    var button = el("button", boxStyle + "right:8px;bottom:36px;cursor:pointer;", "Undo my last edit");
    button.id = "axonlink-undo";
    button.title = "Undo your newest merge or split on this dataset (kept in the history; redo with the API)";
    var undone = [];
    button.addEventListener("click", function () {
      var layers = grapheneLayers();
      if (!layers.length) { button.textContent = "No graphene layer to undo on"; return; }
      var table = layers[0].table;
      fetch("/segmentation/api/v1/table/" + table + "/user_operations?include_undo=false&user_id=" +
            encodeURIComponent(me.user), {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (operations) {
          var last = operations.filter(function (op) { return undone.indexOf(op.operation_id) < 0; }).pop();
          if (!last) throw {message: "nothing of yours to undo"};
          return postJson("/segmentation/api/v1/table/" + table + "/undo", {operation_id: last.operation_id})
            .then(function () { undone.push(last.operation_id); });
        })
        .then(function () { button.textContent = "Undone; undo another"; followEdits(); })
        .catch(function (error) { button.textContent = "Undo: " + ((error && error.message) || error); });
    });
    document.body.appendChild(button);
  }

  function start() {
    shortLinkButton(); modeBanner(); userBadge();
    setInterval(followEdits, FOLLOW_SECONDS * 1000);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
