// The Projects tab: row selection, the Sync to QBO preview, the QBO Customer picker and its
// permanent-mapping dialog, drawers (Change History, Manual Mapping, Json Script), JSON
// highlighting and copy, and polling while rows are Queued.
// Project data only ever reaches the DOM through textContent, never innerHTML.
(() => {
  "use strict";

  const state = {
    selected: new Set(),
    anchor: null,
    all: false,
    filterKey: null,
    previewKey: "",
    previewSeq: 0,
  };
  const $ = (id) => document.getElementById(id);
  const number = (n) => Number(n).toLocaleString("en-US");
  const plural = (n, word) => `${number(n)} ${word}${Number(n) === 1 ? "" : "s"}`;

  function rows() {
    return Array.from(document.querySelectorAll("#project-rows tr[data-id]"));
  }

  function listState() {
    const values = {};
    document.querySelectorAll("[data-list-state]").forEach((input) => {
      values[input.name] = input.value;
    });
    return values;
  }

  // --- htmx: let the row or drawer show a 409/422 answer (htmx skips 4xx by default) -----
  document.addEventListener("htmx:beforeSwap", (event) => {
    const status = event.detail.xhr.status;
    const target = event.detail.target;
    const ours = target && (target.closest("#projects") || target.closest("#drawer"));
    if (ours && (status === 409 || status === 422)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // A preview answer that arrives after a newer selection was made is dropped.
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (!event.detail.target || event.detail.target.id !== "sync-preview") return;
    const seq = new URL(event.detail.xhr.responseURL).searchParams.get("seq");
    if (seq !== String(state.previewSeq)) event.detail.shouldSwap = false;
  });

  // --- selection ------------------------------------------------------------------------
  function clearSelection() {
    state.selected = new Set();
    state.anchor = null;
    state.all = false;
  }

  function applySelection() {
    const results = $("results");
    if (!results) return;
    const key = results.dataset.filterKey;
    if (state.filterKey !== null && key !== state.filterKey) clearSelection();
    state.filterKey = key;
    rows().forEach((tr) => {
      const on = state.all || state.selected.has(tr.dataset.id);
      tr.classList.toggle("is-selected", on);
      const handle = tr.querySelector(".row-handle");
      if (handle) handle.setAttribute("aria-pressed", on ? "true" : "false");
    });
    const selectAll = $("select-all");
    if (selectAll) selectAll.setAttribute("aria-pressed", state.all ? "true" : "false");
    renderSelectionBar();
    fillSyncForm();
    requestPreview();
  }

  function selectionCount() {
    if (state.all) return Number(($("results") || {}).dataset?.total || 0);
    return state.selected.size;
  }

  function renderSelectionBar() {
    const bar = $("selection-bar");
    const text = $("selection-text");
    if (!bar || !text) return;
    const count = selectionCount();
    if (!state.all && count === 0) {
      bar.hidden = true;
      text.textContent = "";
      return;
    }
    bar.hidden = false;
    if (state.all) {
      const atLeast = ($("results") || {}).dataset?.totalAtLeast;
      text.textContent = atLeast
        ? `All matching projects (more than ${number(count)}) are selected.`
        : count === 1
          ? "The 1 matching project is selected."
          : `All ${number(count)} matching projects are selected.`;
    } else {
      const visible = new Set(rows().map((tr) => tr.dataset.id));
      const elsewhere = Array.from(state.selected).filter((id) => !visible.has(id)).length;
      text.textContent =
        `${plural(count, "project")} selected` +
        (elsewhere ? ` (${number(elsewhere)} on other pages).` : ".");
    }
  }

  function fillSyncForm() {
    const form = $("sync-form");
    if (!form) return;
    form.elements.ids.value = state.all ? "" : Array.from(state.selected).join(",");
    form.elements.select_all.value = state.all ? "1" : "";
  }

  let previewTimer = null;
  function requestPreview() {
    const button = $("sync-button");
    if (!button) return;
    const count = selectionCount();
    const key = state.all
      ? `all|${state.filterKey}|${count}`
      : Array.from(state.selected).sort().join(",");
    if (key === state.previewKey) return;
    state.previewKey = key;
    clearTimeout(previewTimer);
    if (!state.all && count === 0) {
      const preview = $("sync-preview");
      if (preview) preview.textContent = "";
      button.title = "Select projects first: click a serial number, or Select All";
      return;
    }
    previewTimer = setTimeout(() => {
      const url = $("projects").dataset.previewUrl;
      const params = new URLSearchParams();
      state.previewSeq += 1;
      params.set("seq", String(state.previewSeq));
      if (state.all) {
        const list = listState();
        params.set("select_all", "1");
        params.set("status", list.status || "");
        params.set("q", list.q || "");
      } else {
        params.set("ids", Array.from(state.selected).join(","));
      }
      htmx
        .ajax("GET", `${url}?${params}`, { target: "#sync-preview", swap: "outerHTML" })
        .then(() => {
          const preview = $("sync-preview");
          if (preview) button.title = preview.textContent.replace(/\s+/g, " ").trim();
        });
    }, 250);
  }

  function onHandle(tr, event) {
    const id = tr.dataset.id;
    const ids = rows().map((r) => r.dataset.id);
    if (state.all) {
      state.all = false;
      state.selected = new Set(ids);
    }
    const keyboard = event.detail === 0; // Enter/Space: toggle, so keyboard users can multi-select
    if (event.shiftKey && state.anchor && ids.includes(state.anchor)) {
      const a = ids.indexOf(state.anchor);
      const b = ids.indexOf(id);
      const [lo, hi] = a < b ? [a, b] : [b, a];
      if (!(event.ctrlKey || event.metaKey)) state.selected = new Set();
      ids.slice(lo, hi + 1).forEach((x) => state.selected.add(x));
    } else if (event.ctrlKey || event.metaKey || keyboard) {
      if (state.selected.has(id)) state.selected.delete(id);
      else state.selected.add(id);
      state.anchor = id;
    } else {
      const onlyThis = state.selected.size === 1 && state.selected.has(id);
      state.selected = onlyThis ? new Set() : new Set([id]);
      state.anchor = id;
    }
    applySelection();
  }

  // Shift-click must not select the page's text.
  document.addEventListener("mousedown", (event) => {
    if (event.shiftKey && event.target.closest(".row-handle")) event.preventDefault();
  });

  // --- the QBO Customer picker ------------------------------------------------------------
  function closePicker(picker, focusToggle) {
    const panel = picker.querySelector(".picker-panel");
    const toggle = picker.querySelector(".picker-toggle");
    if (panel) panel.hidden = true;
    picker.classList.remove("open");
    if (toggle) {
      toggle.setAttribute("aria-expanded", "false");
      if (focusToggle) toggle.focus();
    }
  }

  function openPicker(picker) {
    document.querySelectorAll("[data-picker].open").forEach((p) => {
      if (p !== picker) closePicker(p, false);
    });
    const panel = picker.querySelector(".picker-panel");
    const input = picker.querySelector(".picker-search");
    panel.hidden = false;
    picker.classList.add("open");
    picker.querySelector(".picker-toggle").setAttribute("aria-expanded", "true");
    input.focus();
    if (!picker.dataset.loaded) {
      picker.dataset.loaded = "1";
      htmx.trigger(input, "picker-open");
    }
  }

  const pending = { row: null, customerId: null };

  // Bidi controls (LRE RLE PDF LRO RLO, LRI RLI FSI PDI, LRM RLM ALM): a right-to-left
  // override in a name would reverse the rest of the sentence. The same set as
  // staging/templatetags/bidi.py.
  const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/g;

  // A name for the confirm dialog: its bidi controls removed, inside a <bdi> so that its
  // own direction (Arabic, Hebrew) cannot move the text around it either.
  // https://developer.mozilla.org/en-US/docs/Web/HTML/Element/bdi
  function isolatedName(name) {
    const bdi = document.createElement("bdi");
    bdi.textContent = name.replace(BIDI_CONTROLS, "");
    return bdi;
  }

  function chooseCustomer(option) {
    const row = option.closest("tr");
    const dialog = $("map-confirm");
    pending.row = row;
    pending.customerId = option.dataset.customerId;
    $("map-confirm-text").replaceChildren(
      "This mapping is permanent and cannot be changed. Map “",
      isolatedName(row.dataset.projectName || "this project"),
      "” to “",
      isolatedName(option.dataset.customerName || ""),
      "”?",
    );
    dialog.returnValue = "";
    dialog.showModal();
    $("map-confirm-ok").focus();
  }

  function postMapping() {
    const row = pending.row;
    if (!row || !row.isConnected) return;
    const values = Object.assign(listState(), {
      qbo_customer: pending.customerId,
      serial: row.dataset.serial,
    });
    row.classList.add("is-saving");
    htmx.ajax("POST", row.dataset.mapUrl, { target: row, swap: "outerHTML", values });
  }

  function pickerKeys(event) {
    const picker = event.target.closest("[data-picker]");
    if (!picker) return;
    if (event.key === "Escape") {
      event.preventDefault();
      closePicker(picker, true);
      return;
    }
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const options = Array.from(picker.querySelectorAll(".option"));
    if (!options.length) return;
    event.preventDefault();
    const index = options.indexOf(document.activeElement);
    const step = event.key === "ArrowDown" ? 1 : -1;
    const next = index < 0 ? (step > 0 ? 0 : options.length - 1) : index + step;
    options[Math.max(0, Math.min(options.length - 1, next))].focus();
  }

  // --- drawers ---------------------------------------------------------------------------
  function openDrawer() {
    const drawer = $("drawer");
    if (!drawer) return;
    if (!drawer.open) drawer.showModal();
    const close = drawer.querySelector("[data-close-drawer]");
    if (close) close.focus();
    drawer.querySelectorAll("pre[data-json]").forEach(highlightJson);
  }

  // --- Json Script: a small highlighter (DOM nodes + textContent, no innerHTML) -----------
  const JSON_TOKEN =
    /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;

  function highlightJson(pre) {
    if (pre.dataset.highlighted) return;
    const text = pre.textContent;
    const fragment = document.createDocumentFragment();
    let last = 0;
    for (const match of text.matchAll(JSON_TOKEN)) {
      if (match.index > last) fragment.append(text.slice(last, match.index));
      const span = document.createElement("span");
      if (match[1]) {
        span.className = match[2]
          ? "j-key"
          : match[1].includes("••• redacted •••")
            ? "j-redacted"
            : "j-string";
        span.textContent = match[1];
        fragment.append(span);
        if (match[2]) fragment.append(match[2]);
      } else {
        span.className = match[3] ? "j-literal" : "j-number";
        span.textContent = match[0];
        fragment.append(span);
      }
      last = match.index + match[0].length;
    }
    fragment.append(text.slice(last));
    pre.textContent = "";
    pre.append(fragment);
    pre.dataset.highlighted = "1";
  }

  async function copyBlock(button) {
    const pre = $(button.dataset.copy);
    if (!pre) return;
    const text = pre.textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const range = document.createRange();
      range.selectNodeContents(pre);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand("copy");
      selection.removeAllRanges();
    }
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => {
      button.textContent = label;
    }, 1500);
  }

  // --- one click handler for the screen ---------------------------------------------------
  document.addEventListener("click", (event) => {
    const target = event.target;
    if (!(target instanceof Element) || !$("projects")) return;

    const handle = target.closest(".row-handle");
    if (handle) return onHandle(handle.closest("tr"), event);

    if (target.closest("#select-all")) {
      const on = !state.all;
      clearSelection();
      state.all = on;
      return applySelection();
    }
    if (target.closest("#clear-selection")) {
      clearSelection();
      return applySelection();
    }
    const toggle = target.closest(".picker-toggle");
    if (toggle) {
      const picker = toggle.closest("[data-picker]");
      return picker.classList.contains("open") ? closePicker(picker, false) : openPicker(picker);
    }
    const option = target.closest(".picker-options .option");
    if (option) return chooseCustomer(option);

    const job = target.closest("#mm-jobs .option");
    if (job) {
      // Manual Mapping: mark the chosen job (htmx loads its preview).
      job.parentElement.querySelectorAll(".option").forEach((o) => {
        o.setAttribute("aria-selected", o === job ? "true" : "false");
      });
      return;
    }
    const copy = target.closest("[data-copy]");
    if (copy) return copyBlock(copy);
    if (target.closest("[data-close-drawer]")) return $("drawer").close();
    if (target.id === "drawer") return $("drawer").close(); // the backdrop

    const menuLink = target.closest(".row-menu a");
    if (menuLink) menuLink.closest("details").removeAttribute("open");

    // A click elsewhere closes open pickers and row menus.
    document.querySelectorAll("[data-picker].open").forEach((p) => {
      if (!p.contains(target)) closePicker(p, false);
    });
    document.querySelectorAll("details.row-menu[open]").forEach((menu) => {
      if (!menu.contains(target)) menu.removeAttribute("open");
    });
  });

  document.addEventListener("keydown", pickerKeys);

  document.addEventListener("close", (event) => {
    if (event.target.id === "map-confirm" && event.target.returnValue === "confirm") {
      postMapping();
    }
  }, true);

  // --- after every swap: re-apply the selection, open drawers, fade messages --------------
  let settleQueued = false;
  function afterSwap() {
    if (settleQueued) return;
    settleQueued = true;
    requestAnimationFrame(() => {
      settleQueued = false;
      applySelection();
    });
  }
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "drawer-content") openDrawer();
    afterSwap();
  });
  document.addEventListener("htmx:oobAfterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "messages") {
      setTimeout(() => event.detail.target.querySelectorAll(".message").forEach((m) => m.remove()), 8000);
    }
    afterSwap();
  });
  document.addEventListener("htmx:historyRestore", afterSwap);
  // beforeOnLoad, not afterRequest: the answer replaces the form, and events of a detached
  // element no longer reach the document.
  document.addEventListener("htmx:beforeOnLoad", (event) => {
    const elt = event.detail.elt;
    if (elt && elt.id === "sync-form" && event.detail.xhr.status === 200) {
      clearSelection();
      state.previewKey = "";
      afterSwap();
    }
  });
  // The Import menu announces a finished import: reload the table in place.
  document.addEventListener("importFinished", () => {
    if ($("results")) {
      htmx.ajax("GET", window.location.pathname + window.location.search, {
        target: "#results",
        swap: "outerHTML",
      });
    }
  });

  // --- polling: only while a row on the page is Queued or a sync run is active -------------
  window.ProjectsTab = {
    shouldPoll() {
      if (document.hidden) return false;
      const progress = $("sync-progress");
      return Boolean(
        document.querySelector("#project-rows tr[data-status='queued']") ||
          (progress && progress.dataset.active === "1"),
      );
    },
    queuedRows() {
      return rows()
        .filter((tr) => tr.dataset.status === "queued")
        .map((tr) => `${tr.dataset.id}:${tr.dataset.serial}`)
        .join(",");
    },
  };
  // #project-poller ticks every 2 s. Here, not in hx-trigger/hx-vals expressions, because
  // htmx evaluates those with Function(), which the Content-Security-Policy forbids
  // (allowEval is off): a tick with nothing to watch is cancelled, and a tick that asks
  // sends the queued rows as "rows".
  document.addEventListener("htmx:configRequest", (event) => {
    if (!event.detail.elt || event.detail.elt.id !== "project-poller") return;
    if (!window.ProjectsTab.shouldPoll()) {
      event.preventDefault();
      return;
    }
    event.detail.parameters.rows = window.ProjectsTab.queuedRows();
  });

  function init() {
    if (!$("projects")) return;
    applySelection();
    document.querySelectorAll("pre[data-json]").forEach(highlightJson);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
