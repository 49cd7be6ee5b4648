// axonlink: small additions around the stock Neuroglancer client (no change to the client itself).
// - a "Short link" button: stores the current view and copies <origin>/s/<id>
// - when opened from a share link (?link=<id>&as=was|now): a banner saying which version is shown
// - who is signed in (the session cookie is HttpOnly: we ask /api/v1/me), with sign-in / sign-out links
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
    var badge = el("div", boxStyle + "right:8px;bottom:8px;");
    badge.id = "axonlink-user";
    document.body.appendChild(badge);
    fetch("/api/v1/me", {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (me) {
      var roles = Object.keys(me.roles || {}).map(function (d) { return d + ": " + me.roles[d]; }).join(", ");
      badge.dataset.user = me.user;
      badge.textContent = me.authenticated ? "Signed in as " + me.user + (roles ? " (" + roles + ") " : " ")
                                           : "Viewing without signing in ";
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

  function start() { shortLinkButton(); modeBanner(); userBadge(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
