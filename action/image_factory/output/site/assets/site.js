// The status page's only script: filters the overview table (state, team, name) and copies
// digests. Written here, no dependency; it reads the page, never the network. The filter lives in
// the URL's fragment (#state=failed&team=acme&q=api), so a link reproduces what it shows.
(function () {
  "use strict";

  var table = document.getElementById("images");
  var stateSelect = document.getElementById("filter-state");
  var teamSelect = document.getElementById("filter-team");
  var search = document.getElementById("search");
  var shown = document.getElementById("shown");

  function readFragment() {
    var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    return { state: params.get("state") || "", team: params.get("team") || "", q: params.get("q") || "" };
  }

  function writeFragment(filter) {
    var params = new URLSearchParams();
    if (filter.state) params.set("state", filter.state);
    if (filter.team) params.set("team", filter.team);
    if (filter.q) params.set("q", filter.q);
    var text = params.toString();
    var url = window.location.pathname + window.location.search + (text ? "#" + text : "");
    window.history.replaceState(null, "", url);
  }

  function choose(select, value) {
    // a value the page does not offer (a stale link) selects "all"
    var known = Array.prototype.some.call(select.options, function (option) {
      return option.value === value;
    });
    select.value = known ? value : "";
  }

  function apply(filter) {
    var needle = filter.q.trim().toLowerCase();
    var rows = table.tBodies[0].rows;
    var count = 0;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var match =
        (!filter.state || row.dataset.state === filter.state) &&
        (!filter.team || row.dataset.team === filter.team) &&
        (!needle || row.dataset.name.indexOf(needle) !== -1);
      row.hidden = !match;
      if (match) count++;
    }
    shown.textContent = count + " of " + rows.length + " images shown";
    var chips = document.querySelectorAll("button.count");
    for (var j = 0; j < chips.length; j++) {
      chips[j].setAttribute("aria-pressed", String(chips[j].dataset.state === filter.state));
    }
  }

  function fromControls() {
    var filter = { state: stateSelect.value, team: teamSelect.value, q: search.value };
    writeFragment(filter);
    apply(filter);
  }

  function fromFragment() {
    var filter = readFragment();
    choose(stateSelect, filter.state);
    choose(teamSelect, filter.team);
    search.value = filter.q;
    apply({ state: stateSelect.value, team: teamSelect.value, q: filter.q });
  }

  if (table && stateSelect && teamSelect && search && shown) {
    stateSelect.addEventListener("change", fromControls);
    teamSelect.addEventListener("change", fromControls);
    search.addEventListener("input", fromControls);
    window.addEventListener("hashchange", fromFragment);
    var chips = document.querySelectorAll("button.count");
    for (var k = 0; k < chips.length; k++) {
      chips[k].addEventListener("click", function (event) {
        var state = event.currentTarget.dataset.state;
        stateSelect.value = stateSelect.value === state ? "" : state;
        fromControls();
      });
    }
    fromFragment();
  }

  function copied(button, word) {
    var before = button.textContent;
    button.textContent = word;
    window.setTimeout(function () {
      button.textContent = before;
    }, 1200);
  }

  function copy(button) {
    var text = button.dataset.copy;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () {
          copied(button, "copied");
        },
        function () {
          fallbackCopy(button, text);
        }
      );
    } else {
      fallbackCopy(button, text);
    }
  }

  function fallbackCopy(button, text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (error) {
      ok = false;
    }
    document.body.removeChild(area);
    copied(button, ok ? "copied" : "select and copy");
  }

  var buttons = document.querySelectorAll("button.copy");
  for (var b = 0; b < buttons.length; b++) {
    buttons[b].addEventListener("click", function (event) {
      copy(event.currentTarget);
    });
  }
})();
