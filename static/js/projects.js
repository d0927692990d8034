// The Projects tab: what htmx attributes cannot say. Row selection (click, Shift, Ctrl/Cmd,
// Select All) and the inputs it fills, the QBO Customer picker and its permanent-mapping
// dialog, opening and closing the drawers, Copy, and which rows the poll asks about.
// Everything else (search, the Sync to QBO preview, error answers, reloading after an
// import) is htmx markup in the templates. Loaded on every page; acts only on #projects.
// Project data only ever reaches the DOM through textContent, never innerHTML.
(() => {
  "use strict";

  const state = {
    selected: new Set(),
    anchor: null,
    all: false,
    filterKey: null,
    previewKey: "",
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

  // The Sync to QBO form, its preview form and Map selected… (toolbar_actions in
  // projects.html) send the same selection.
  function fillSyncForm() {
    ["sync-form", "sync-preview-form", "map-form"].forEach((id) => {
      const form = $(id);
      if (!form) return;
      form.elements.ids.value = state.all ? "" : Array.from(state.selected).join(",");
      form.elements.select_all.value = state.all ? "1" : "";
    });
  }

  const NO_SELECTION_TITLE = "Select projects first: click a serial number, or Select All";

  // The preview form waits for the selection to settle and drops a stale answer itself
  // (hx-trigger delay, hx-sync replace): here, only tell it the selection changed.
  function requestPreview() {
    const button = $("sync-button");
    const form = $("sync-preview-form");
    if (!button || !form) return;
    const count = selectionCount();
    const key = state.all
      ? `all|${state.filterKey}|${count}`
      : Array.from(state.selected).sort().join(",");
    if (key === state.previewKey) return;
    state.previewKey = key;
    if (!state.all && count === 0) {
      const preview = $("sync-preview");
      if (preview) preview.textContent = "";
      button.title = NO_SELECTION_TITLE;
    }
    htmx.trigger(form, "selection-changed");
  }

  // The preview's text is also the Sync button's tooltip.
  document.addEventListener("htmx:afterRequest", (event) => {
    if (!event.detail.elt || event.detail.elt.id !== "sync-preview-form") return;
    const button = $("sync-button");
    const preview = $("sync-preview");
    if (!button || !preview || !event.detail.successful) return;
    button.title = preview.textContent.replace(/\s+/g, " ").trim() || NO_SELECTION_TITLE;
  });

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

  const pending = { row: null, customerId: null, createUrl: null };

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

  // Names compared as QBO compares them (qbo_client/names.py): case and spaces ignored.
  function comparable(name) {
    return name.replace(BIDI_CONTROLS, "").replace(/\s+/g, " ").trim().toLowerCase();
  }

  function chooseCustomer(option) {
    const row = option.closest("tr");
    const dialog = $("map-confirm");
    pending.row = row;
    pending.customerId = option.dataset.customerId;
    pending.createUrl = option.dataset.createUrl || null;
    $("map-confirm-ok").textContent = pending.createUrl ? "Create and map" : "Map permanently";
    if (pending.createUrl) {
      $("map-confirm-text").replaceChildren(
        "Create the customer “",
        isolatedName(option.dataset.customerName || ""),
        "” in QuickBooks and map “",
        isolatedName(row.dataset.projectName || "this project"),
        "” to it? The mapping is permanent and cannot be changed.",
      );
      dialog.returnValue = "";
      dialog.showModal();
      $("map-confirm-ok").focus();
      return;
    }
    const text = [
      "This mapping is permanent and cannot be changed. Map “",
      isolatedName(row.dataset.projectName || "this project"),
      "” to “",
      isolatedName(option.dataset.customerName || ""),
      "”?",
    ];
    const client = row.dataset.clientName || "";
    if (client && comparable(client) !== comparable(option.dataset.customerName || "")) {
      const warning = document.createElement("strong");
      warning.className = "confirm-warning";
      warning.append("The Linarc client is “", isolatedName(client), "”: a different name.");
      text.push(warning);
    }
    $("map-confirm-text").replaceChildren(...text);
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
    const url = pending.createUrl || row.dataset.mapUrl;
    htmx.ajax("POST", url, { target: row, swap: "outerHTML", values });
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
    const option = target.closest(".picker-options .option, .cell-suggestion");
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

    // A click elsewhere closes open pickers and row menus.
    document.querySelectorAll("[data-picker].open").forEach((p) => {
      if (!p.contains(target)) closePicker(p, false);
    });
  });

  document.addEventListener("keydown", pickerKeys);

  document.addEventListener("close", (event) => {
    if (event.target.id === "map-confirm" && event.target.returnValue === "confirm") {
      postMapping();
    }
  }, true);

  // --- after every swap: re-apply the selection, open drawers ----------------------------
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
  document.addEventListener("htmx:oobAfterSwap", afterSwap);
  document.addEventListener("htmx:historyRestore", afterSwap);
  // beforeOnLoad, not afterRequest: the answer replaces the form, and events of a detached
  // element no longer reach the document.
  document.addEventListener("htmx:beforeOnLoad", (event) => {
    const elt = event.detail.elt;
    if (elt && elt.id === "map-apply-form" && event.detail.xhr.status === 200) {
      $("drawer").close();
    }
    if (elt && ["sync-form", "map-apply-form"].includes(elt.id) && event.detail.xhr.status === 200) {
      clearSelection();
      state.previewKey = "";
      afterSwap();
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
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
