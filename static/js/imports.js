// Imports and sync rules. Loaded by their partials; guarded so a second load is harmless.
(() => {
  if (window.linarcImportsLoaded) return;
  window.linarcImportsLoaded = true;

  // htmx 2 does not swap 4xx/5xx answers. Forms and regions marked data-swap-errors render
  // their error (422 form error, 409 conflict, 502 Linarc down) in place instead.
  document.addEventListener("htmx:beforeSwap", (event) => {
    const status = event.detail.xhr.status;
    const source = event.detail.elt || event.target;
    if (status >= 400 && status < 600 && source && source.closest && source.closest("[data-swap-errors]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // Close the Import menu after choosing an item, and when clicking elsewhere.
  document.addEventListener("click", (event) => {
    document.querySelectorAll("details.import-menu[open]").forEach((menu) => {
      const item = event.target.closest(".import-menu-item");
      if (!menu.contains(event.target) || (item && menu.contains(item) && item.tagName === "BUTTON")) {
        setTimeout(() => menu.removeAttribute("open"), 0);
      }
    });
    const dismiss = event.target.closest("[data-dismiss-run]");
    if (dismiss) dismiss.closest(".run-progress")?.remove();
  });

  // Select All in the Import Selected picker, and the selected count.
  const refreshCount = (form) => {
    const label = form.querySelector("[data-selected-count]");
    if (label) label.textContent = `${form.querySelectorAll("input[name=linarc_id]:checked").length} selected`;
  };
  document.addEventListener("change", (event) => {
    const form = event.target.form;
    if (!form) return;
    const name = event.target.dataset.selectAll;
    if (name) form.querySelectorAll(`input[name="${name}"]`).forEach((box) => { box.checked = event.target.checked; });
    refreshCount(form);
  });
})();
