/* hpt-async dashboard: draws charts and tables from the server's JSON and applies live updates.
   Study strings are only ever inserted as text (textContent), and charts are SVG parsed as XML. */
(function () {
  "use strict";
  var body = document.body;
  var page = body.getAttribute("data-page");
  var study = body.getAttribute("data-study");
  var STATES = ["complete", "pruned", "failed", "running", "cancelled", "lost", "paused"];

  function q(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      if (params[k] !== null && params[k] !== undefined && params[k] !== "") {
        parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(params[k]));
      }
    });
    return parts.join("&");
  }

  function getJSON(url) {
    return fetch(url, {headers: {"Accept": "application/json"}}).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }

  function fmt(v, digits) {
    if (v === null || v === undefined) { return "-"; }
    if (typeof v !== "number") { return String(v); }
    if (!isFinite(v)) { return String(v); }
    if (v === 0) { return "0"; }
    var a = Math.abs(v);
    if (a >= 1e-3 && a < 1e6) { return String(Number(v.toPrecision(digits || 6))); }
    return v.toExponential((digits || 6) - 1).replace(/\.?0+e/, "e").replace("e+", "e");
  }

  function when(ts) {
    if (!ts) { return "-"; }
    var d = new Date(ts * 1000);
    function p(n) { return (n < 10 ? "0" : "") + n; }
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " +
      p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }

  function trialHref(n) { return "/trial?" + q({s: study, n: n}); }
  function studyHref(name) { return "/study?" + q({s: name}); }

  /* Tooltips: every SVG <title> becomes a data-tip shown by one floating box. */
  var tip = document.getElementById("tip");
  function adoptTitles(root) {
    var titles = root.querySelectorAll("title");
    for (var i = 0; i < titles.length; i++) {
      var t = titles[i], owner = t.parentNode;
      if (owner && owner.namespaceURI === "http://www.w3.org/2000/svg" && owner.tagName !== "svg") {
        owner.setAttribute("data-tip", t.textContent);
        owner.classList.add("mark");
        owner.removeChild(t);
      }
    }
  }
  document.addEventListener("mouseover", function (e) {
    var target = e.target.closest ? e.target.closest("[data-tip]") : null;
    if (!target) { tip.hidden = true; return; }
    tip.textContent = target.getAttribute("data-tip");
    tip.hidden = false;
    var x = e.clientX + 14, y = e.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth - 8) { x = e.clientX - tip.offsetWidth - 14; }
    if (y + tip.offsetHeight > window.innerHeight - 8) { y = e.clientY - tip.offsetHeight - 14; }
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  });
  adoptTitles(document);

  function live(on, text) {
    var l = document.getElementById("live");
    if (!l) { return; }
    l.textContent = text;
    l.classList.toggle("on", on);
  }

  function listen(url, name, handler) {
    var source = new EventSource(url);
    source.addEventListener("open", function () { live(true, "live"); });
    source.addEventListener("error", function () { live(false, "reconnecting"); });
    source.addEventListener(name, function (e) { live(true, "live"); handler(JSON.parse(e.data)); });
    return source;
  }

  /* -- the studies list ------------------------------------------------------------------ */

  function studiesPage() {
    var tbody = document.querySelector("#studies tbody");
    listen("/api/studies/events", "studies", function (data) {
      var rows = document.createDocumentFragment();
      data.studies.forEach(function (s) {
        var tr = el("tr");
        tr.setAttribute("data-study", s.name);
        var a = el("a", s.name);
        a.href = studyHref(s.name);
        var name = el("td");
        name.appendChild(a);
        tr.appendChild(name);
        tr.appendChild(el("td", s.direction.join(" / ")));
        var n = el("td", s.n, "num");
        n.setAttribute("data-field", "n");
        tr.appendChild(n);
        var counts = Object.keys(s.counts).map(function (k) { return k + " " + s.counts[k]; }).join(", ");
        tr.appendChild(el("td", counts || "no trials"));
        tr.appendChild(el("td", s.best ? fmt(s.best.value) : "-"));
        tr.appendChild(el("td", when(s.started)));
        tr.appendChild(el("td", when(s.ended)));
        tr.appendChild(el("td", s.running ? "running" : "idle"));
        rows.appendChild(tr);
      });
      tbody.textContent = "";
      tbody.appendChild(rows);
      var none = document.getElementById("no-studies");
      if (none) { none.hidden = data.studies.length > 0; }
    });
  }

  /* -- a study ------------------------------------------------------------------------------ */

  function header(s) {
    var total = document.getElementById("trial-total");
    if (total) { total.textContent = s.n; }
    STATES.forEach(function (state) {
      var b = document.querySelector('[data-count="' + state + '"]');
      if (!b) { return; }
      var n = s.counts[state] || 0;
      b.textContent = n;
      b.parentNode.hidden = !(n || state === "complete");
    });
    var badge = document.getElementById("running-badge");
    if (badge) { badge.hidden = !s.running; }
    var started = document.getElementById("started");
    if (started) { started.textContent = when(s.started); }
    var best = document.getElementById("best-value");
    if (best && s.direction.length > 1) {
      best.textContent = s.front + " trials";
    } else if (best && s.best) {
      best.textContent = fmt(s.best.value);
      var bt = document.getElementById("best-trial");
      if (bt) { bt.textContent = "trial " + s.best.number; }
      var bp = document.getElementById("best-params");
      if (bp) {
        bp.textContent = "";
        Object.keys(s.best.params).forEach(function (k) {
          var tr = el("tr");
          tr.appendChild(el("td", k));
          tr.appendChild(el("td", s.best.params[k]));
          bp.appendChild(tr);
        });
      }
    }
  }

  function studyPage() {
    var chartKeys = JSON.parse(body.getAttribute("data-charts"));
    var params = JSON.parse(body.getAttribute("data-params"));
    var table = {sort: "number", desc: true, state: "", text: "", offset: 0, limit: 50};
    var drawing = false, drawAgain = false, lastDraw = 0, chartTimer = null;

    function drawChart(key) {
      return getJSON("/api/chart?" + q({s: study, c: key})).then(function (c) {
        var card = document.getElementById("chart-" + key);
        var doc = new DOMParser().parseFromString(c.svg, "image/svg+xml");
        var svg = document.importNode(doc.documentElement, true);
        svg.setAttribute("class", "chart");
        adoptTitles(svg);
        var holder = card.querySelector(".figure");
        holder.textContent = "";
        holder.classList.remove("loading");
        holder.appendChild(svg);
        card.querySelector("h2").textContent = c.title;
        card.querySelector(".caption").textContent = c.caption;
        var notes = card.querySelector(".notes");
        notes.textContent = "";
        c.notes.forEach(function (n) { notes.appendChild(el("p", n, "note")); });
        card.setAttribute("data-drawn", String(c.version));
      });
    }

    /* One chart after the other, the first (the history) first: it is on screen soonest. */
    function drawCharts() {
      if (drawing) { drawAgain = true; return; }
      drawing = true;
      lastDraw = Date.now();
      var chain = Promise.resolve();
      /* Importance fits a model: it comes last, so that it never holds back the other charts. */
      var order = chartKeys.filter(function (k) { return k !== "importance"; });
      if (chartKeys.indexOf("importance") >= 0) { order.push("importance"); }
      order.forEach(function (key) { chain = chain.then(function () { return drawChart(key); }); });
      chain.catch(function (err) { console.warn("chart:", err.message); }).then(function () {
        drawing = false;
        if (drawAgain) { drawAgain = false; scheduleCharts(); }
      });
    }

    function scheduleCharts() {
      if (chartTimer) { return; }
      var wait = Math.max(0, 4000 - (Date.now() - lastDraw));
      chartTimer = setTimeout(function () { chartTimer = null; drawCharts(); }, wait);
    }

    var columns = [["number", "#"], ["state", "state"], ["value", "value"], ["duration", "seconds"],
      ["started", "started"]].concat(params.map(function (p) { return ["param:" + p, p]; }))
      .concat([[null, "reports"]]);
    var headRow = document.querySelector("#trial-table thead tr");
    columns.forEach(function (col) {
      var th = el("th", col[1]);
      if (col[0]) {
        th.setAttribute("data-sort", col[0]);
        th.addEventListener("click", function () {
          if (table.sort === col[0]) { table.desc = !table.desc; } else { table.sort = col[0]; table.desc = col[0] === "number"; }
          table.offset = 0;
          loadTable();
        });
      }
      headRow.appendChild(th);
    });

    var tableTimer = null, loading = false, loadAgain = false;
    function loadTable() {
      if (loading) { loadAgain = true; return; }
      loading = true;
      var url = "/api/trials?" + q({s: study, sort: table.sort, desc: table.desc ? 1 : 0, state: table.state,
        q: table.text, offset: table.offset, limit: table.limit});
      getJSON(url).then(function (data) {
        var tbody = document.querySelector("#trial-table tbody");
        var frag = document.createDocumentFragment();
        data.rows.forEach(function (r) {
          var tr = el("tr");
          if (r.best) { tr.className = "is-best"; }
          var a = el("a", r.number);
          a.href = trialHref(r.number);
          var td = el("td");
          td.appendChild(a);
          tr.appendChild(td);
          var st = el("span", r.state, "state s-" + r.state);
          var std = el("td");
          std.appendChild(st);
          tr.appendChild(std);
          tr.appendChild(el("td", r.values ? r.values.map(function (v) { return fmt(v); }).join(", ") : fmt(r.value)));
          tr.appendChild(el("td", r.duration === null ? "-" : fmt(r.duration, 3)));
          tr.appendChild(el("td", when(r.started)));
          params.forEach(function (p) { tr.appendChild(el("td", p in r.params ? r.params[p] : "")); });
          tr.appendChild(el("td", r.reports));
          frag.appendChild(tr);
        });
        tbody.textContent = "";
        tbody.appendChild(frag);
        document.getElementById("trial-count").textContent = data.total;
        var last = Math.min(data.total, table.offset + data.rows.length);
        document.getElementById("page-info").textContent =
          data.total ? (table.offset + 1) + "–" + last + " of " + data.total : "none";
        document.getElementById("prev").disabled = table.offset === 0;
        document.getElementById("next").disabled = last >= data.total;
        var ths = headRow.querySelectorAll("th");
        for (var i = 0; i < ths.length; i++) {
          var sorted = ths[i].getAttribute("data-sort") === table.sort;
          ths[i].classList.toggle("sorted", sorted);
          var base = columns[i][1];
          ths[i].textContent = sorted ? base + (table.desc ? " ▼" : " ▲") : base;
        }
        document.getElementById("trials").setAttribute("data-version", String(data.version));
      }).catch(function (err) { console.warn("table:", err.message); }).then(function () {
        loading = false;
        if (loadAgain) { loadAgain = false; loadTable(); }
      });
    }
    function scheduleTable() {
      if (tableTimer) { return; }
      tableTimer = setTimeout(function () { tableTimer = null; loadTable(); }, 200);
    }

    document.getElementById("filter-state").addEventListener("change", function (e) {
      table.state = e.target.value; table.offset = 0; loadTable();
    });
    var typing = null;
    document.getElementById("filter-text").addEventListener("input", function (e) {
      clearTimeout(typing);
      typing = setTimeout(function () { table.text = e.target.value; table.offset = 0; loadTable(); }, 250);
    });
    document.getElementById("page-size").addEventListener("change", function (e) {
      table.limit = Number(e.target.value); table.offset = 0; loadTable();
    });
    document.getElementById("prev").addEventListener("click", function () {
      table.offset = Math.max(0, table.offset - table.limit); loadTable();
    });
    document.getElementById("next").addEventListener("click", function () {
      table.offset += table.limit; loadTable();
    });

    drawCharts();
    loadTable();
    var seen = -1;
    listen("/api/events?" + q({s: study}), "change", function (data) {
      header(data.summary);
      if (seen >= 0 && data.summary.version !== seen) {
        scheduleTable();
        scheduleCharts();
      }
      seen = data.summary.version;
    });
  }

  /* -- a trial ------------------------------------------------------------------------------- */

  function trialPage() {
    var number = Number(body.getAttribute("data-trial"));
    var main = document.getElementById("trial-main");
    listen("/api/events?" + q({s: study}), "change", function (data) {
      var mine = data.resync || data.rows.some(function (r) { return r.number === number; });
      if (!mine || data.from === 0) { return; }
      fetch("/trial?" + q({s: study, n: number, part: "main"})).then(function (r) { return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString("<main>" + html + "</main>", "text/html");
          main.textContent = "";
          var src = doc.body.firstChild;
          while (src && src.firstChild) { main.appendChild(document.adoptNode(src.firstChild)); }
          adoptTitles(main);
        }).catch(function (err) { console.warn("trial:", err.message); });
    });
  }

  if (page === "studies") { studiesPage(); }
  else if (page === "study") { studyPage(); }
  else if (page === "trial") { trialPage(); }
})();
